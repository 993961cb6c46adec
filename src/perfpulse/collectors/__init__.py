"""Collectors: one module per source. ``load_builtin()`` imports them so they register themselves."""

from __future__ import annotations

import importlib

#: Built-in collector modules, in the order the UI lists them.
BUILTIN: tuple[str, ...] = (
    "cpu",
    "memory",
    "disk",
    "network",
    "pressure",
    "perf_events",
    "processes",
    "gpu",
    "memory_bandwidth",
    "energy",
)


def load_builtin() -> None:
    for mod in BUILTIN:
        importlib.import_module(f"perfpulse.collectors.{mod}")
