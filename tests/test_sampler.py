"""The Sampler: the grid, skipped late ticks, live interval changes, Snapshot contents, sinks.

Grid tests run on FakeClock (an hour of ticks in about a second); the deadline tests run on the real clock
with real threads, because "the tick arrives on time" is only meaningful in real time.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable

import pytest

from perfpulse.collectors.aggregator import CollectorResult, MetricsAggregator
from perfpulse.collectors.base import Roots
from perfpulse.model import MetricSpec, Snapshot
from perfpulse.sampler import (
    BrokenCollector,
    Sampler,
    SystemClock,
    build_collectors,
    build_default,
    check_interval,
)
from perfpulse.testing import FakeClock, FakeCollector


def run_until(sampler: Sampler, done: Callable[[Snapshot], bool]) -> list[Snapshot]:
    """Run the sampler until ``done(snapshot)``; returns every Snapshot in order."""
    seen: list[Snapshot] = []

    def record(s: Snapshot) -> None:
        seen.append(s)
        if done(s):
            sampler.stop()

    async def main() -> None:
        sampler.add_sink(record, name="record")
        # Sinks run in their own tasks; stop() from one lands before the next grid point.
        await sampler.run()
        await sampler.aclose()

    asyncio.run(main())
    return seen


def test_an_hour_of_ticks_lands_exactly_on_the_grid() -> None:
    clock = FakeClock(start=5000.0)
    sampler = Sampler(MetricsAggregator([FakeCollector("a"), FakeCollector("b")]), interval=1.0, clock=clock)
    snaps = run_until(sampler, lambda s: s.seq >= 3600)
    assert len(snaps) == 3600
    for k, s in enumerate(snaps):
        assert s.monotonic == 5000.0 + k * 1.0, f"tick {k} drifted"
        assert s.seq == k + 1
    assert sampler.skipped == 0
    # Wall time follows the same grid (FakeClock keeps a fixed offset), and ends an hour later.
    assert snaps[-1].wall_time - snaps[0].wall_time == pytest.approx(3599.0)


def test_fractional_interval_does_not_accumulate_rounding() -> None:
    """0.1 is not exact in binary: adding it 3,000 times drifts, multiplying does not."""
    clock = FakeClock(start=0.0)
    sampler = Sampler(MetricsAggregator([FakeCollector()]), interval=0.1, clock=clock)
    snaps = run_until(sampler, lambda s: s.seq >= 3000)
    assert [s.monotonic for s in snaps] == [k * 0.1 for k in range(3000)]
    summed = 0.0
    for _ in range(2999):
        summed += 0.1
    assert summed != 2999 * 0.1  # the naive loop would have drifted: the test above can tell


def test_late_tick_is_skipped_not_bunched() -> None:
    clock = FakeClock(start=0.0)
    calls = {"n": 0}

    def slow_fourth() -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            clock.advance(2.5)  # the tick at t=3 runs until t=5.5

    sampler = Sampler(MetricsAggregator([FakeCollector(on_collect=slow_fourth)]), interval=1.0, clock=clock)
    snaps = run_until(sampler, lambda s: s.seq >= 7)
    assert [s.monotonic for s in snaps] == [0.0, 1.0, 2.0, 3.0, 6.0, 7.0, 8.0]
    assert sampler.skipped == 2  # t=4 and t=5 never fired


def test_small_jitter_is_not_a_skip() -> None:
    """A tick that overruns its slot by less than the slack still lets the next grid point run."""
    clock = FakeClock(start=0.0)

    def overrun() -> None:
        clock.advance(1.01)  # 10 ms past the next grid point, within the 50 ms slack at 1 s

    sampler = Sampler(MetricsAggregator([FakeCollector(on_collect=overrun)]), interval=1.0, clock=clock)
    snaps = run_until(sampler, lambda s: s.seq >= 4)
    assert sampler.skipped == 0
    assert len(snaps) == 4


@pytest.mark.parametrize("bad", [0.05, 0.0, -1.0, 60.5, math.nan, math.inf, "fast", None])
def test_interval_outside_range_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="interval"):
        check_interval(bad)  # type: ignore[arg-type]
    sampler = Sampler(MetricsAggregator([]))
    with pytest.raises(ValueError, match="interval"):
        sampler.interval = bad  # type: ignore[assignment]
    assert sampler.interval == 1.0
    with pytest.raises(ValueError, match="interval"):
        Sampler(MetricsAggregator([]), interval=bad)  # type: ignore[arg-type]


def test_interval_bounds_are_accepted() -> None:
    assert check_interval(0.1) == 0.1
    assert check_interval(60) == 60.0


def test_interval_change_reanchors_the_grid() -> None:
    clock = FakeClock(start=0.0)
    calls = {"n": 0}

    def change_during_third_tick() -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the tick at t=2
            sampler.interval = 0.5

    collector = FakeCollector(on_collect=change_during_third_tick)
    sampler = Sampler(MetricsAggregator([collector]), interval=1.0, clock=clock)
    snaps = run_until(sampler, lambda s: s.seq >= 6)
    assert [s.monotonic for s in snaps] == [0.0, 1.0, 2.0, 2.5, 3.0, 3.5]
    # The tick during which the change happened reports the interval it was collected under.
    assert [s.interval for s in snaps][3:] == [0.5, 0.5, 0.5]


def test_interval_change_wakes_a_long_sleep() -> None:
    """Going from 60 s to 1 s must not wait out the old 60 s sleep (real clock)."""
    sampler = Sampler(MetricsAggregator([FakeCollector()]), interval=60.0, clock=SystemClock())
    stamps: list[float] = []

    def record(s: Snapshot) -> None:
        stamps.append(s.monotonic)
        if len(stamps) == 2:
            sampler.stop()

    async def main() -> None:
        sampler.add_sink(record, name="r")
        runner = asyncio.create_task(sampler.run())
        await asyncio.sleep(0.2)
        sampler.interval = 0.3
        await asyncio.wait_for(runner, 5)
        await sampler.aclose()

    t0 = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t0 < 3
    # The second tick is one new interval after the first, not 60 s and not immediately.
    assert stamps[1] - stamps[0] == pytest.approx(0.3, abs=0.05)


def test_snapshot_carries_data_and_meta_per_collector() -> None:
    clock = FakeClock(start=100.0, wall_start=1_700_000_000.0)
    agg = MetricsAggregator(
        [
            FakeCollector("good", data={"x": 1.5, "nested": {"y": 2}}),
            FakeCollector("bad", raises=RuntimeError("sensor on fire")),
            FakeCollector("absent", reason="no such device here"),
            FakeCollector("off", enabled=False),
        ]
    )
    sampler = Sampler(agg, host="box1", clock=clock)
    snap = asyncio.run(sampler.tick())
    assert sampler.latest is snap and sampler.seq == 1
    assert (snap.host, snap.monotonic, snap.wall_time, snap.interval) == ("box1", 100.0, 1_700_000_000.0, 1.0)
    assert set(snap.data) == set(snap.meta) == {"good", "bad", "absent"}  # disabled: skipped, not collected
    assert snap.data["good"] == {"x": 1.5, "nested": {"y": 2}}
    assert snap.meta["good"].error is None and snap.meta["good"].duration_ms >= 0
    assert not snap.meta["good"].stale
    assert snap.meta["bad"].error == "RuntimeError: sensor on fire"
    assert snap.data["bad"] == {}
    assert snap.meta["absent"].available is False
    assert snap.data["absent"]["reason"] == "no such device here"
    d = snap.as_dict()
    assert d["collectors"]["good"]["meta"]["stale"] is False
    assert "timestamp" not in d["collectors"]["good"]["data"]


def test_catalogue_lists_enabled_collectors() -> None:
    spec = MetricSpec("fake_value_count", "count", "gauge", "a value", "value")
    agg = MetricsAggregator([FakeCollector("a", catalogue=[spec]), FakeCollector("b", enabled=False)])
    assert Sampler(agg).catalogue() == {"a": [spec]}


def test_slow_collector_is_stale_and_ticks_stay_on_time() -> None:
    """Real time, real threads: a collector blocked for 60 s in a worker thread, 0.2 s ticks for ~3 s.

    Every tick starts within 50 ms of its grid point, the fast collector is fresh every tick, the slow
    one is stale every tick with a single collection in flight, and the thread count stays flat.
    """
    hung = FakeCollector("hung", delay=60.0, blocking=True)
    fast = FakeCollector("fast", data=lambda n: {"n": n})
    sampler = Sampler(MetricsAggregator([hung, fast]), interval=0.2)
    lateness: list[float] = []
    threads: list[int] = []

    def record(s: Snapshot) -> None:
        lateness.append(sampler.last_lateness)
        threads.append(threading.active_count())
        assert s.meta["hung"].stale and not s.meta["fast"].stale
        assert s.data["fast"] == {"n": s.seq}
        if s.seq >= 15:
            sampler.stop()

    before = threading.active_count()
    run_until_real(sampler, record)
    assert len(lateness) == 15
    assert max(lateness) < 0.05, lateness
    assert sampler.skipped == 0
    assert hung.calls == 1 and hung.max_running == 1
    assert max(threads) <= before + 2, threads  # the hung worker plus at most one pool thread for "fast"


def run_until_real(sampler: Sampler, sink: Callable[[Snapshot], None]) -> None:
    async def main() -> None:
        sampler.add_sink(sink, name="check")
        await asyncio.wait_for(sampler.run(), 30)
        await sampler.aclose()

    asyncio.run(main())


def test_stale_collector_recovers_and_its_late_data_is_kept() -> None:
    """A collector slower than the budget (0.3 s against 0.16 s) still refreshes: the result that lands
    between ticks is carried by the next stale tick instead of being thrown away."""
    slow = FakeCollector("slow", delay=0.3, data=lambda n: {"n": n})
    sampler = Sampler(MetricsAggregator([slow]), interval=0.2)
    carried: list[object] = []

    def record(s: Snapshot) -> None:
        carried.append(s.data["slow"].get("n"))
        if s.seq >= 8:
            sampler.stop()

    run_until_real(sampler, record)
    assert carried[0] is None  # nothing yet at the first tick
    assert any(isinstance(n, int) and n >= 2 for n in carried), carried
    assert slow.max_running == 1


def test_slow_and_failing_sinks_never_delay_ticks() -> None:
    fast_seen: list[int] = []
    slow_started: list[int] = []

    async def slow_sink(s: Snapshot) -> None:
        slow_started.append(s.seq)
        await asyncio.sleep(0.45)

    def broken_sink(s: Snapshot) -> None:
        raise RuntimeError("disk full")

    sampler = Sampler(MetricsAggregator([FakeCollector()]), interval=0.1)
    lateness: list[float] = []

    def fast_sink(s: Snapshot) -> None:
        fast_seen.append(s.seq)
        lateness.append(sampler.last_lateness)
        if s.seq >= 10:
            sampler.stop()

    async def main() -> None:
        sampler.add_sink(slow_sink, name="slow")
        sampler.add_sink(broken_sink, name="broken")
        sampler.add_sink(fast_sink, name="fast")
        with pytest.raises(ValueError, match="already"):
            sampler.add_sink(fast_sink, name="fast")
        await asyncio.wait_for(sampler.run(), 10)
        await sampler.aclose(sink_timeout=0.01)

    asyncio.run(main())
    assert fast_seen == list(range(1, 11))
    assert max(lateness) < 0.05
    # The slow sink got 1 snapshot in 5; the rest were skipped and counted.
    assert slow_started[0] == 1 and len(slow_started) <= 4
    assert sampler.sink_skipped["slow"] == 10 - len(slow_started)
    assert sampler.sink_errors["broken"] == 10
    assert sampler.sink_skipped["fast"] == 0


def test_remove_sink_stops_delivery() -> None:
    clock = FakeClock()
    sampler = Sampler(MetricsAggregator([FakeCollector()]), clock=clock)
    got: list[int] = []

    async def main() -> None:
        sampler.add_sink(lambda s: got.append(s.seq), name="g")
        await sampler.tick()
        await asyncio.sleep(0)
        sampler.remove_sink("g")
        sampler.remove_sink("g")  # idempotent
        await sampler.tick()
        await asyncio.sleep(0)
        await sampler.aclose()

    asyncio.run(main())
    assert got == [1]


def test_run_twice_at_once_is_refused_and_aclose_closes_collectors() -> None:
    c = FakeCollector()
    sampler = Sampler(MetricsAggregator([c]), clock=FakeClock())

    async def main() -> None:
        runner = asyncio.create_task(sampler.run())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already running"):
            await sampler.run()
        await sampler.aclose()
        await runner

    asyncio.run(main())
    assert c.closed and not sampler.running


def test_aclose_before_the_run_task_starts_wins() -> None:
    """A shutdown racing the start (task created, aclose() before it ever ran) must not leave a loop
    ticking on closed collectors."""
    c = FakeCollector()
    sampler = Sampler(MetricsAggregator([c]), clock=FakeClock())

    async def main() -> None:
        runner = asyncio.create_task(sampler.run())
        await sampler.aclose()
        await asyncio.wait_for(runner, 1)

    asyncio.run(main())
    assert c.calls == 0 and c.closed and sampler.seq == 0


class _Recorder(FakeCollector):
    """A registered-collector stand-in that records what build_default handed its constructor."""

    name = "recorder"

    def __init__(self, *, roots: Roots | None = None, enabled: bool = True, clock: object = None) -> None:
        super().__init__("recorder", roots=roots, enabled=enabled)
        self.clock_given = clock


class _Explodes(FakeCollector):
    name = "explodes"

    def __init__(self, *, roots: Roots | None = None, enabled: bool = True) -> None:
        raise OSError(24, "Too many open files")


def test_build_default_forwards_options_and_survives_a_broken_constructor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry is swapped for two stand-in classes (the real ones are exercised by the golden test):
    one takes a clock, one cannot be constructed."""
    import perfpulse.sampler as sampler_mod

    monkeypatch.setattr(sampler_mod, "registry", lambda: {"recorder": _Recorder, "explodes": _Explodes})
    clock = FakeClock()
    roots = Roots.under("/nonexistent")
    sampler = build_default(roots=roots, clock=clock, interval=2.0, host="h", unrelated_option=1)
    assert (sampler.interval, sampler.host, sampler.clock) == (2.0, "h", clock)
    rec = sampler.aggregator.get("recorder")
    assert isinstance(rec, _Recorder) and rec.clock_given == clock.monotonic and rec.roots == roots
    broken = sampler.aggregator.get("explodes")
    assert isinstance(broken, BrokenCollector)
    assert broken.unavailable_reason() == "could not start: OSError: [Errno 24] Too many open files"
    snap = asyncio.run(sampler.tick())
    assert snap.meta["explodes"].available is False and snap.meta["recorder"].available

    only = build_default(enabled=["recorder"])
    assert [c.enabled for c in only.aggregator.collectors()] == [True, False]
    assert only.catalogue() == {"recorder": []}
    assert [c.name for c in build_collectors(enabled=["recorder"], include_disabled=False)] == ["recorder"]
    with pytest.raises(ValueError, match=r"unknown collector\(s\): nope; known: explodes, recorder"):
        build_default(enabled=["nope", "recorder"])


def test_a_failing_tick_does_not_stop_the_clock(caplog: pytest.LogCaptureFixture) -> None:
    class FlakyAggregator(MetricsAggregator):
        calls = 0

        async def collect_all(self, deadline: float | None = None) -> dict[str, CollectorResult]:
            FlakyAggregator.calls += 1
            if FlakyAggregator.calls == 2:
                raise RuntimeError("aggregator bug")
            return await super().collect_all(deadline)

    sampler = Sampler(FlakyAggregator([FakeCollector()]), clock=FakeClock(start=0.0))
    snaps = run_until(sampler, lambda s: s.seq >= 3)
    assert [s.monotonic for s in snaps] == [0.0, 2.0, 3.0]  # the tick at t=1 was lost, not the clock
    assert "aggregator bug" in caplog.text
