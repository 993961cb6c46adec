"""Collectors: one module per source. ``load_builtin()`` imports them so they register themselves."""

from __future__ import annotations

import importlib

#: Built-in collector modules, in the order the UI lists them.
BUILTIN: tuple[str, ...] = ("perf_events",)


def load_builtin() -> None:
    for mod in BUILTIN:
        importlib.import_module(f"perfpulse.collectors.{mod}")
