"""MetricsAggregator: runs every enabled collector concurrently, each under its own deadline.

A collector that misses its deadline does not delay the tick: the tick goes on with that collector marked
stale (its last good data, if any, is carried). Its collection keeps running in the background and is not
started again until it finishes, so a hung source costs at most one thread, never a pile of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from perfpulse.collectors.base import BaseCollector
from perfpulse.model import CollectorMeta

_META_KEYS = ("timestamp", "duration_ms", "error")


@dataclass(slots=True)
class CollectorResult:
    data: dict[str, Any]
    meta: CollectorMeta


@dataclass(slots=True)
class _Slot:
    collector: BaseCollector
    task: asyncio.Task[dict[str, Any]] | None = None
    started: float = 0.0
    #: The task's result was used by a tick (or harvested into last_data).
    consumed: bool = True
    last_data: dict[str, Any] = field(default_factory=dict)


def split_meta(raw: dict[str, Any]) -> tuple[dict[str, Any], CollectorMeta]:
    """Separate what ``safe_collect()`` added from the collector's own data."""
    data = {k: v for k, v in raw.items() if k not in _META_KEYS}
    meta = CollectorMeta(
        timestamp=float(raw.get("timestamp", time.time())),
        duration_ms=float(raw.get("duration_ms", 0.0)),
        error=raw.get("error"),
        available=data.get("available", True) is not False,
    )
    return data, meta


class MetricsAggregator:
    def __init__(self, collectors: Iterable[BaseCollector] = ()) -> None:
        self._slots: dict[str, _Slot] = {}
        for c in collectors:
            self.add(c)

    # -- membership ---------------------------------------------------------------------------------------
    def add(self, collector: BaseCollector) -> None:
        if collector.name in self._slots:
            raise ValueError(f"a collector named {collector.name!r} is already registered")
        self._slots[collector.name] = _Slot(collector)

    def remove(self, name: str) -> BaseCollector:
        slot = self._slots.pop(name)
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
        slot.collector.close()
        return slot.collector

    def get(self, name: str) -> BaseCollector | None:
        slot = self._slots.get(name)
        return slot.collector if slot else None

    def names(self) -> list[str]:
        return list(self._slots)

    def collectors(self) -> list[BaseCollector]:
        return [s.collector for s in self._slots.values()]

    def in_flight(self) -> int:
        """Collections still running from earlier ticks (for tests and self-monitoring)."""
        return sum(1 for s in self._slots.values() if s.task is not None and not s.task.done())

    # -- collection ---------------------------------------------------------------------------------------
    async def collect_all(self, deadline: float | None = None) -> dict[str, CollectorResult]:
        """One tick: all enabled collectors at once; a stale one is marked, not awaited past its deadline.

        A collector's deadline is its own ``timeout`` counted from when its collection started, and at most
        ``deadline`` seconds from this call (the Sampler passes a share of its interval, so a slow source
        never pushes the next tick off the grid).
        """
        now = time.perf_counter()
        waits: dict[str, asyncio.Task[dict[str, Any]]] = {}
        results: dict[str, CollectorResult] = {}
        for name, slot in self._slots.items():
            if not slot.collector.enabled:
                continue
            if slot.task is None or slot.task.done():
                self._harvest(slot)
                slot.task = asyncio.create_task(slot.collector.safe_collect(), name=f"collect:{name}")
                slot.started = now
                slot.consumed = False
            waits[name] = slot.task

        async def wait_one(name: str, task: asyncio.Task[dict[str, Any]]) -> None:
            slot = self._slots.get(name)
            if slot is None:
                return
            remaining = slot.collector.timeout - (time.perf_counter() - slot.started)
            if deadline is not None:
                remaining = min(remaining, deadline - (time.perf_counter() - now))
            done = task.done()
            if not done and remaining > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), remaining)
                done = task.done()
            if done and not task.cancelled():
                slot.consumed = True
                data, meta = split_meta(task.result())
                if meta.error is None and meta.available:
                    slot.last_data = data
                results[name] = CollectorResult(data, meta)
            else:
                waited = time.perf_counter() - slot.started
                meta = CollectorMeta(
                    timestamp=time.time(),
                    duration_ms=waited * 1000.0,
                    error=f"stale: still collecting after {waited:.3g} s",
                    stale=True,
                )
                results[name] = CollectorResult(dict(slot.last_data), meta)

        await asyncio.gather(*(wait_one(n, t) for n, t in waits.items()))
        return {n: results[n] for n in waits if n in results}

    @staticmethod
    def _harvest(slot: _Slot) -> None:
        """Keep the data of a collection that finished after its tick gave up on it: the next stale tick
        then carries it, instead of a collector slower than its deadline never refreshing at all."""
        task = slot.task
        if slot.consumed or task is None or task.cancelled():
            return
        slot.consumed = True
        data, meta = split_meta(task.result())
        if meta.error is None and meta.available:
            slot.last_data = data

    async def aclose(self) -> None:
        """Cancel what is still running and close every collector."""
        for slot in self._slots.values():
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()
        tasks = [s.task for s in self._slots.values() if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for slot in self._slots.values():
            slot.collector.close()
