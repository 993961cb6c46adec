"""Two-tick runs of the system collectors over the fixture machines in tests/fixtures/machines.

A collector reads ``self.roots`` on every tick, so a test moves it from ``t0`` to ``t1`` by assigning new
roots between ticks and advancing an injected clock by one second, exactly as the two captures were
taken. ``copy_tree`` makes a writable copy for the reset, vanish and boot-change variants.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots
from perfpulse.model import iter_samples

MACHINES = Path(__file__).resolve().parents[1] / "fixtures" / "machines"
sys.path.insert(0, str(MACHINES))

import make_large as large  # noqa: E402  (the generator's own numbers are the expected values)

__all__ = ["MACHINES", "Clock", "large", "ticks"]


class Clock:
    def __init__(self, now: float = 5000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ticks(
    collector: BaseCollector,
    clock: Clock,
    trees: Iterable[Path],
    before_tick: Callable[[Path], None] | None = None,
) -> list[dict[str, Any]]:
    """One ``collect()`` per tree, the clock one second later each time."""
    out = []
    for i, tree in enumerate(trees):
        if i:
            clock.now += 1.0
        collector.roots = Roots.under(tree)
        if before_tick is not None:
            before_tick(tree)
        out.append(asyncio.run(collector.collect()))
    return out


def scenario(name: str) -> list[Path]:
    return [MACHINES / name / "t0", MACHINES / name / "t1"]


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=False)
    return dst


def edit(path: Path, func: Callable[[str], str]) -> None:
    path.write_text(func(path.read_text()))


def drop_lines(path: Path, startswith: str) -> None:
    edit(path, lambda s: "".join(ln for ln in s.splitlines(True) if not ln.lstrip().startswith(startswith)))


def numbers(value: Any) -> Iterable[float]:
    """Every number inside a nested dict/list, for blanket sanity checks (no negative rate, no NaN)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from numbers(v)


def catalogue_gaps(collector: BaseCollector, data: dict[str, Any]) -> list[str]:
    """Catalogue entries that produce no sample from ``data``: a path that does not match the data."""
    return [spec.name for spec in collector.catalogue if next(iter_samples(spec, data), None) is None]
