"""Fakes shipped with perfpulse, for its own tests and for anyone building on it.

``FakeClock`` drives the Sampler through an hour of ticks in a fraction of a second; ``FakeCollector`` is a
collector whose data, delay, failure and availability the test sets. Both are real implementations of the
contracts (``perfpulse.sampler.Clock``, ``BaseCollector``), not mocks: code under test cannot tell them
from the real thing except by the time it takes.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots, run_blocking, unavailable
from perfpulse.model import MetricSpec

__all__ = ["FakeClock", "FakeCollector"]


class FakeClock:
    """A clock that only moves when told to, or when the Sampler sleeps on it.

    ``sleep_until(t)`` jumps straight to ``t`` (and yields to the event loop once), so a Sampler running on
    this clock ticks as fast as the CPU allows while seeing perfectly regular time. ``advance()`` moves time
    forward by hand, e.g. from inside a collector, to make a tick late. ``monotonic`` is also a plain
    ``() -> float`` suitable for ``CounterTracker(clock=...)``.
    """

    def __init__(self, start: float = 1000.0, *, wall_start: float = 1_700_000_000.0) -> None:
        self.now = float(start)
        self._wall_offset = float(wall_start) - self.now
        #: Every deadline the Sampler slept until, in order.
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._wall_offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a monotonic clock does not go backwards")
        self.now += seconds

    async def sleep_until(self, deadline: float) -> None:
        self.sleeps.append(deadline)
        self.now = max(self.now, deadline)
        await asyncio.sleep(0)


DataSource = Mapping[str, Any] | Callable[[int], Mapping[str, Any]]


class FakeCollector(BaseCollector):
    """A collector whose behaviour the test sets.

    ``data`` is the dict each collection returns, or a function of the call number (1, 2, ...) that builds
    it. ``delay`` seconds pass before it returns: on the event loop (``asyncio.sleep``) or, with
    ``blocking=True``, in a worker thread through ``run_blocking``, like a hung ``statvfs``.
    ``raises`` makes every collection fail with that exception. ``reason`` makes it unavailable.
    ``on_collect`` runs at the start of every collection (e.g. ``clock.advance``). With ``shared_worker=True``
    the whole collection is one blocking call (``blocking_call()``), as for the /proc collectors, so the
    aggregator runs it on the worker thread it shares with the others; ``threads`` records which thread
    ran each call.

    ``calls``, ``running`` and ``max_running`` let a test check that collections do not pile up.
    """

    name = "fake"

    def __init__(
        self,
        name: str = "fake",
        *,
        data: DataSource | None = None,
        delay: float = 0.0,
        blocking: bool = False,
        shared_worker: bool = False,
        raises: BaseException | type[BaseException] | None = None,
        reason: str | None = None,
        hint: str | None = None,
        catalogue: Iterable[MetricSpec] = (),
        on_collect: Callable[[], None] | None = None,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        # `name` and `catalogue` are class attributes on real collectors; a fake sets them per instance.
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "catalogue", tuple(catalogue))
        self.data: DataSource = data if data is not None else {"value": 1}
        self.delay = delay
        self.blocking = blocking
        self.shared_worker = shared_worker
        self.threads: list[int] = []
        self.raises = raises
        self.reason = reason
        self._hint = hint
        self.on_collect = on_collect
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self.closed = False
        self._lock = threading.Lock()
        self._release = threading.Event()

    def unavailable_reason(self) -> str | None:
        return self.reason

    def hint(self) -> str | None:
        return self._hint

    def blocking_call(self) -> Callable[[], dict[str, Any]] | None:
        return self._collect_blocking if self.shared_worker else None

    def _collect_blocking(self) -> dict[str, Any]:
        call = self._enter()
        try:
            if self.on_collect is not None:
                self.on_collect()
            self.threads.append(threading.get_ident())
            if self.delay > 0:
                self._release.wait(self.delay)
            return self._result(call)
        finally:
            with self._lock:
                self.running -= 1

    def _enter(self) -> int:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            return self.calls

    def _result(self, call: int) -> dict[str, Any]:
        if self.raises is not None:
            raise self.raises
        if self.reason is not None:
            return unavailable(self.reason, self._hint)
        source = self.data
        return dict(source(call) if callable(source) else source)

    async def collect(self) -> dict[str, Any]:
        if self.shared_worker:  # collected outside an aggregator
            return await run_blocking(self._collect_blocking)
        call = self._enter()
        try:
            if self.on_collect is not None:
                self.on_collect()
            if self.delay > 0:
                if self.blocking:
                    await run_blocking(self._release.wait, self.delay)
                else:
                    await asyncio.sleep(self.delay)
            return self._result(call)
        finally:
            with self._lock:
                self.running -= 1

    def close(self) -> None:
        """Also wakes a blocking sleep early: the thread would otherwise hold interpreter exit (the event
        loop joins its worker threads on close) for the whole ``delay``."""
        self.closed = True
        self._release.set()
