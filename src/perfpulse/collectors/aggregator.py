"""MetricsAggregator: runs every enabled collector concurrently, each under its own deadline.

A collector that misses its deadline does not delay the tick: the tick goes on with that collector marked
stale (its last good data, if any, is carried). Its collection keeps running in the background and is not
started again until it finishes, so a hung source costs at most one thread, never a pile of them.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from perfpulse.collectors.base import BaseCollector
from perfpulse.model import CollectorMeta

_META_KEYS = ("timestamp", "duration_ms", "error")

#: Seconds a tick lets its shared worker thread run before the collections it has not started yet get a
#: thread each: a blocking call that hangs delays the ones queued behind it by this much, never past their
#: deadlines, while in the normal case a whole tick costs one thread hand-off instead of one per collector.
LANE_PATIENCE = 0.05

_Job = tuple[BaseCollector, Callable[[], dict[str, Any]], "asyncio.Future[dict[str, Any]]"]


@dataclass(slots=True)
class CollectorResult:
    data: dict[str, Any]
    meta: CollectorMeta


@dataclass(slots=True)
class _Slot:
    collector: BaseCollector
    task: asyncio.Future[dict[str, Any]] | None = None
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
        never pushes the next tick off the grid). Collections that are one blocking call share one worker
        thread (see ``_Lane``); the others run as coroutines.
        """
        now = time.perf_counter()
        loop = asyncio.get_running_loop()
        waits: dict[str, asyncio.Future[dict[str, Any]]] = {}
        jobs: list[_Job] = []
        for name, slot in self._slots.items():
            if not slot.collector.enabled:
                continue
            if slot.task is None or slot.task.done():
                self._harvest(slot)
                call = slot.collector.blocking_call()
                if call is None:
                    slot.task = asyncio.create_task(slot.collector.safe_collect(), name=f"collect:{name}")
                else:
                    future: asyncio.Future[dict[str, Any]] = loop.create_future()
                    jobs.append((slot.collector, call, future))
                    slot.task = future
                slot.started = now
                slot.consumed = False
            waits[name] = slot.task
        if jobs:
            _Lane(loop, jobs).start()

        results: dict[str, CollectorResult] = {}
        pending = dict(waits)
        while pending:
            t = time.perf_counter()
            limits: list[float] = []
            for name, task in list(pending.items()):
                current = self._slots.get(name)  # None when removed while collecting
                if current is not None and not task.done():
                    remaining = current.collector.timeout - (t - current.started)
                    if deadline is not None:
                        remaining = min(remaining, deadline - (t - now))
                    if remaining > 0:
                        limits.append(remaining)
                        continue
                del pending[name]
                if current is not None:
                    results[name] = self._result(current, task)
            if pending:
                await asyncio.wait(pending.values(), timeout=min(limits))
        return {n: results[n] for n in waits if n in results}

    @staticmethod
    def _result(slot: _Slot, task: asyncio.Future[dict[str, Any]]) -> CollectorResult:
        if task.done() and not task.cancelled():
            slot.consumed = True
            data, meta = split_meta(task.result())
            if meta.error is None and meta.available:
                slot.last_data = data
            return CollectorResult(data, meta)
        waited = time.perf_counter() - slot.started
        meta = CollectorMeta(
            timestamp=time.time(),
            duration_ms=waited * 1000.0,
            error=f"stale: still collecting after {waited:.3g} s",
            stale=True,
        )
        return CollectorResult(dict(slot.last_data), meta)

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


class _Lane:
    """One tick's blocking collections, run back to back on one worker thread.

    Results are handed to the event loop together when the worker is done. If it is still busy after
    ``LANE_PATIENCE`` (a read that hangs, a slow NVML call), what it finished so far is delivered and every
    collection it has not started is moved to a thread of its own; the one it is stuck in delivers when it
    returns, like any stale collector.
    """

    __slots__ = ("_jobs", "_loop", "_results", "_timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, jobs: list[_Job]) -> None:
        self._loop = loop
        self._jobs: collections.deque[_Job] = collections.deque(jobs)
        # deque.append/popleft are atomic: the worker appends, the loop pops.
        self._results: collections.deque[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]] = (
            collections.deque()
        )
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        worker = self._loop.run_in_executor(None, self._run)
        worker.add_done_callback(self._finished)
        self._timer = self._loop.call_later(LANE_PATIENCE, self._release)

    def _run(self) -> None:  # on the worker thread
        while True:
            try:
                collector, call, future = self._jobs.popleft()
            except IndexError:
                return
            if future.cancelled():  # the collector was removed meanwhile
                continue
            self._results.append((future, collector.safe_collect_blocking(call)))

    def _deliver(self) -> None:
        while True:
            try:
                future, raw = self._results.popleft()
            except IndexError:
                return
            if not future.done():
                future.set_result(raw)

    def _finished(self, worker: asyncio.Future[None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._deliver()
        if not worker.cancelled() and worker.exception() is not None:  # pragma: no cover - BaseException only
            self._release()

    def _release(self) -> None:
        """The worker is taking too long: deliver what it has and give each waiting collection a thread."""
        self._deliver()
        while True:
            try:
                collector, call, future = self._jobs.popleft()
            except IndexError:
                return
            if future.done():
                continue
            moved = self._loop.run_in_executor(None, collector.safe_collect_blocking, call)
            moved.add_done_callback(functools.partial(_settle, future))


def _settle(target: asyncio.Future[dict[str, Any]], source: asyncio.Future[dict[str, Any]]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())
