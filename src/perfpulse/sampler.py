"""The Sampler: perfpulse's clock, and the fan-out of each tick's Snapshot to its sinks.

Ticks sit on a fixed grid ``anchor + k * interval`` computed by multiplication, never by adding intervals,
so an hour of ticks does not drift by the accumulated rounding of 3,600 sleeps. When a tick runs late (the
machine was suspended, the event loop was starved) the grid points already missed are skipped and counted
rather than fired back to back: a burst of catch-up ticks would give rates over near-zero intervals and show
the dashboard a spike that never happened.

Each tick gives collectors a budget shorter than the interval; one that misses it is marked stale for that
tick (the aggregator keeps at most one collection per collector in flight), so a hung source never pushes
the next tick off the grid. Sinks (WebSocket hub, history store, live ring) each run in their own task; a
sink still busy with the previous Snapshot skips the new one instead of queueing it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from perfpulse.collectors.aggregator import MetricsAggregator
from perfpulse.collectors.base import BaseCollector, Roots, registry, unavailable
from perfpulse.model import MetricSpec, Snapshot

log = logging.getLogger("perfpulse.sampler")

Sink = Callable[[Snapshot], Awaitable[None] | None]

MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0
#: Share of the interval collectors may use in one tick; the rest is headroom for building the Snapshot
#: and for timers that fire late on a loaded machine.
COLLECT_BUDGET = 0.75
#: Sampler options `build_default` keeps for itself; every other keyword goes to the collectors.
_SAMPLER_OPTIONS = ("interval", "host", "clock")


class Clock(Protocol):
    """Time as the Sampler sees it. Tests inject `perfpulse.testing.FakeClock` to run an hour in a second."""

    def monotonic(self) -> float: ...

    def wall(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``monotonic() >= deadline``."""


class SystemClock:
    """The real clocks: ``time.monotonic`` for the grid, ``time.time`` for timestamps."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        # asyncio.sleep may wake a hair early on some loops; loop until the deadline really passed.
        while (delay := deadline - time.monotonic()) > 0:
            await asyncio.sleep(delay)


def check_interval(value: float) -> float:
    """The interval as a float, or ValueError saying what is allowed."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"interval must be a number of seconds, got {value!r}") from None
    if not math.isfinite(f) or not MIN_INTERVAL <= f <= MAX_INTERVAL:
        raise ValueError(
            f"interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, got {value!r}"
        )
    return f


def late_slack(interval: float) -> float:
    """How late a grid point may be started before it counts as missed (scheduler jitter, not lateness)."""
    return min(0.05, interval * 0.25)


class Sampler:
    """Ticks the aggregator on a fixed monotonic grid and hands every Snapshot to the sinks."""

    def __init__(
        self,
        aggregator: MetricsAggregator,
        *,
        interval: float = 1.0,
        host: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.aggregator = aggregator
        self._interval = check_interval(interval)
        self.host = host or socket.gethostname()
        self.clock: Clock = clock or SystemClock()
        self.latest: Snapshot | None = None
        self.seq = 0
        #: Grid points skipped because the loop was late for them.
        self.skipped = 0
        #: How late (seconds) the last scheduled tick started after its grid point.
        self.last_lateness = 0.0
        self.sink_skipped: dict[str, int] = {}
        self.sink_errors: dict[str, int] = {}
        self._sinks: dict[str, Sink] = {}
        self._sink_tasks: dict[str, asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._running = False
        self._closed = False
        self._run_done = asyncio.Event()
        self._run_done.set()

    # -- interval -----------------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        return self._interval

    @interval.setter
    def interval(self, value: float) -> None:
        new = check_interval(value)
        if new != self._interval:
            self._interval = new
            self._wake.set()  # a loop asleep on the old grid re-anchors now

    # -- sinks --------------------------------------------------------------------------------------------
    def add_sink(self, sink: Sink, *, name: str) -> None:
        if name in self._sinks:
            raise ValueError(f"a sink named {name!r} is already attached")
        self._sinks[name] = sink
        self.sink_skipped.setdefault(name, 0)
        self.sink_errors.setdefault(name, 0)

    def remove_sink(self, name: str) -> None:
        """Detach a sink (no error if it is not attached); its delivery in progress is cancelled."""
        self._sinks.pop(name, None)
        task = self._sink_tasks.pop(name, None)
        if task is not None and not task.done():
            task.cancel()

    def sink_names(self) -> list[str]:
        return list(self._sinks)

    def _dispatch(self, snapshot: Snapshot) -> None:
        for name, sink in list(self._sinks.items()):
            busy = self._sink_tasks.get(name)
            if busy is not None and not busy.done():
                self.sink_skipped[name] = self.sink_skipped.get(name, 0) + 1
                continue
            self._sink_tasks[name] = asyncio.create_task(
                self._deliver(name, sink, snapshot), name=f"sink:{name}"
            )

    async def _deliver(self, name: str, sink: Sink, snapshot: Snapshot) -> None:
        try:
            result = sink(snapshot)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            self.sink_errors[name] = self.sink_errors.get(name, 0) + 1
            log.exception("sink %s failed on snapshot %d", name, snapshot.seq)

    # -- ticking ------------------------------------------------------------------------------------------
    def collect_budget(self) -> float:
        """Seconds collectors get in one tick before the laggards are marked stale."""
        return self._interval * COLLECT_BUDGET

    async def tick(self) -> Snapshot:
        """Collect once now, publish the Snapshot as ``latest`` and hand it to the sinks."""
        async with self._lock:
            mono = self.clock.monotonic()
            wall = self.clock.wall()
            results = await self.aggregator.collect_all(deadline=self.collect_budget())
            self.seq += 1
            snapshot = Snapshot(
                host=self.host,
                wall_time=wall,
                monotonic=mono,
                seq=self.seq,
                interval=self._interval,
                data={name: r.data for name, r in results.items()},
                meta={name: r.meta for name, r in results.items()},
            )
            self.latest = snapshot
        self._dispatch(snapshot)
        return snapshot

    async def _sleep_until(self, deadline: float) -> bool:
        """Sleep on the clock until ``deadline``; False when woken early by stop() or an interval change."""
        if self._wake.is_set():
            self._wake.clear()
            return False
        if self.clock.monotonic() >= deadline:
            await asyncio.sleep(0)  # let the sinks of the previous tick start first
            return not self._stopping
        sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (sleeper, waker):
                t.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)
        if waker in done:
            self._wake.clear()
            return False
        return True

    async def run(self) -> None:
        """Tick on the grid until stop(). The first tick is immediate; it anchors the grid."""
        if self._running:
            raise RuntimeError("this Sampler is already running")
        if self._closed:
            return  # aclose() ran first (a shutdown racing the start): never tick on closed collectors
        self._running = True
        self._stopping = False
        self._run_done.clear()
        try:
            interval = self._interval
            anchor = self.clock.monotonic()
            k = 0
            last: float | None = None
            while not self._stopping:
                if self._interval != interval:
                    # Re-anchor: the next tick comes one new interval after the last one (or now, if that
                    # moment has passed) and the grid continues from there.
                    interval = self._interval
                    now = self.clock.monotonic()
                    anchor = now if last is None else max(last + interval, now)
                    k = 0
                target = anchor + k * interval
                if not await self._sleep_until(target):
                    continue
                if self._stopping:
                    break
                self.last_lateness = self.clock.monotonic() - target
                try:
                    await self.tick()
                except Exception:  # a bug in one tick must not stop the clock for good
                    log.exception("tick %d failed", self.seq + 1)
                last = target
                k += 1
                # Skip the grid points this tick overran instead of firing them back to back.
                now = self.clock.monotonic()
                due = math.ceil((now - late_slack(interval) - anchor) / interval)
                if due > k:
                    self.skipped += due - k
                    log.warning("tick overran: skipped %d tick(s) of %g s", due - k, interval)
                    k = due
        finally:
            self._running = False
            self._run_done.set()

    @property
    def running(self) -> bool:
        return self._running

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def aclose(self, *, sink_timeout: float = 5.0) -> None:
        """Stop ticking, let sinks finish the Snapshot they hold (cancelled after ``sink_timeout``), then
        close the collectors."""
        self._closed = True
        self.stop()
        if self._running:
            await self._run_done.wait()
        pending = [t for t in self._sink_tasks.values() if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=sink_timeout)
            for t in late:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._sink_tasks.clear()
        await self.aggregator.aclose()

    # -- introspection ------------------------------------------------------------------------------------
    def catalogue(self) -> dict[str, list[MetricSpec]]:
        return {c.name: list(c.catalogue) for c in self.aggregator.collectors() if c.enabled}

    def stats(self) -> dict[str, Any]:
        """Self-monitoring counters (for /api/system and the Prometheus exporter)."""
        return {
            "seq": self.seq,
            "interval": self._interval,
            "skipped_ticks": self.skipped,
            "last_lateness_seconds": self.last_lateness,
            "in_flight_collections": self.aggregator.in_flight(),
            "sink_skipped": dict(self.sink_skipped),
            "sink_errors": dict(self.sink_errors),
        }


class BrokenCollector(BaseCollector):
    """Stands in for a collector whose constructor raised, so one bug does not take the daemon down and the
    collector still shows up, unavailable, with the error as the reason."""

    name = "broken"

    def __init__(self, name: str, error: BaseException, *, roots: Roots | None = None) -> None:
        super().__init__(roots=roots, enabled=True)
        # `name` is a class attribute on real collectors; this stand-in takes the name it replaces.
        object.__setattr__(self, "name", name)
        self._reason = f"could not start: {type(error).__name__}: {error}"

    def unavailable_reason(self) -> str | None:
        return self._reason

    async def collect(self) -> dict[str, Any]:
        return unavailable(self._reason)


def _accepted(cls: type[BaseCollector], options: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` that ``cls.__init__`` takes as keywords."""
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return {}
    # Only named parameters: a ``**kwargs`` usually ends in BaseCollector.__init__, which takes no extras.
    return {k: v for k, v in options.items() if k in params and k not in ("self", "roots", "enabled")}


def build_collectors(
    roots: Roots | None = None,
    enabled: Iterable[str] | None = None,
    *,
    include_disabled: bool = True,
    **options: Any,
) -> list[BaseCollector]:
    """Every registered collector, constructed with ``roots``; those not in ``enabled`` (when given) are
    built disabled so they can be switched on later, or left out with ``include_disabled=False``.
    Keywords a collector's constructor accepts (``syscalls=``, ``clock=``, ...) are passed to it. Unknown
    names in ``enabled`` raise ValueError listing the known ones."""
    classes = registry()
    wanted: set[str] | None = None
    if enabled is not None:
        wanted = set(enabled)
        unknown = sorted(wanted - set(classes))
        if unknown:
            raise ValueError(
                f"unknown collector(s): {', '.join(unknown)}; known: {', '.join(sorted(classes))}"
            )
    out: list[BaseCollector] = []
    for name, cls in classes.items():
        on = wanted is None or name in wanted
        if not on and not include_disabled:
            continue
        try:
            collector = cls(roots=roots, enabled=on, **_accepted(cls, options))
        except Exception as exc:
            log.exception("collector %s could not be constructed", name)
            collector = BrokenCollector(name, exc, roots=roots)
            collector.enabled = on
        out.append(collector)
    return out


def build_default(
    roots: Roots | None = None, enabled: Iterable[str] | None = None, **options: Any
) -> Sampler:
    """A Sampler over every registered collector (see `build_collectors`).

    ``interval``, ``host`` and ``clock`` configure the Sampler; a ``clock`` is also handed, as its
    ``monotonic`` function, to collectors that take a ``clock=`` so their rates follow the same time.
    Any other keyword goes to the collectors whose constructor accepts it.
    """
    sampler_opts = {k: options.pop(k) for k in _SAMPLER_OPTIONS if k in options}
    clock: Clock | None = sampler_opts.get("clock")
    if clock is not None:
        options.setdefault("clock", clock.monotonic)
    collectors = build_collectors(roots, enabled, **options)
    sampler = Sampler(
        MetricsAggregator(collectors),
        interval=sampler_opts.get("interval", 1.0),
        host=sampler_opts.get("host"),
        clock=clock,
    )
    return sampler


__all__ = [
    "MAX_INTERVAL",
    "MIN_INTERVAL",
    "BrokenCollector",
    "Clock",
    "Sampler",
    "Sink",
    "SystemClock",
    "build_collectors",
    "build_default",
    "check_interval",
]
