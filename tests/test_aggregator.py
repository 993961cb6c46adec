"""MetricsAggregator: concurrency, deadlines, stale data, one collection in flight per collector."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from perfpulse.collectors.aggregator import CollectorResult, MetricsAggregator, split_meta
from perfpulse.testing import FakeCollector


def collect(agg: MetricsAggregator, rounds: int = 1, **kw: Any) -> list[dict[str, CollectorResult]]:
    async def main() -> list[dict[str, CollectorResult]]:
        out = [await agg.collect_all(**kw) for _ in range(rounds)]
        await agg.aclose()
        return out

    return asyncio.run(main())


def test_collectors_run_concurrently() -> None:
    agg = MetricsAggregator([FakeCollector(f"c{i}", delay=0.2) for i in range(5)])
    t0 = time.perf_counter()
    (res,) = collect(agg)
    elapsed = time.perf_counter() - t0
    assert len(res) == 5
    assert elapsed < 0.6, f"5 x 0.2 s took {elapsed:.2f} s: not concurrent"


def test_one_failure_does_not_hide_the_others() -> None:
    agg = MetricsAggregator(
        [FakeCollector("ok", data={"v": 1}), FakeCollector("boom", raises=ValueError("bad line 3"))]
    )
    (res,) = collect(agg)
    assert res["ok"].data == {"v": 1} and res["ok"].meta.error is None
    assert res["boom"].meta.error == "ValueError: bad line 3" and res["boom"].data == {}


def test_collector_timeout_marks_stale_and_carries_last_good_data() -> None:
    c = FakeCollector("c", data=lambda n: {"n": n}, timeout=0.1)

    async def main() -> list[CollectorResult]:
        agg = MetricsAggregator([c])
        first = (await agg.collect_all())["c"]
        c.delay = 5.0  # from now on it hangs
        t0 = time.perf_counter()
        second = (await agg.collect_all())["c"]
        waited = time.perf_counter() - t0
        third = (await agg.collect_all())["c"]
        assert waited < 0.5
        assert agg.in_flight() == 1
        await agg.aclose()
        return [first, second, third]

    first, second, third = asyncio.run(main())
    assert first.data == {"n": 1} and not first.meta.stale
    assert second.meta.stale and second.data == {"n": 1}  # last good data, marked stale
    assert second.meta.error is not None and "stale" in second.meta.error
    assert second.meta.duration_ms >= 100
    assert third.meta.stale and c.calls == 2  # the hung collection was not started again


def test_tick_deadline_caps_a_longer_collector_timeout() -> None:
    c = FakeCollector("c", delay=5.0, timeout=30.0)
    t0 = time.perf_counter()
    (res,) = collect(MetricsAggregator([c]), deadline=0.1)
    assert time.perf_counter() - t0 < 0.5
    assert res["c"].meta.stale


def test_result_landing_between_ticks_is_kept() -> None:
    c = FakeCollector("c", delay=0.15, data=lambda n: {"n": n})

    async def main() -> list[CollectorResult]:
        agg = MetricsAggregator([c])
        a = (await agg.collect_all(deadline=0.05))["c"]  # gives up on call 1
        await asyncio.sleep(0.2)  # call 1 finishes in the background
        b = (await agg.collect_all(deadline=0.05))["c"]  # starts call 2, gives up, carries call 1's data
        await agg.aclose()
        return [a, b]

    a, b = asyncio.run(main())
    assert a.meta.stale and a.data == {}
    assert b.meta.stale and b.data == {"n": 1}


def test_unavailable_and_failed_results_do_not_replace_last_good_data() -> None:
    c = FakeCollector("c", data={"v": 1}, timeout=0.05)

    async def main() -> list[CollectorResult]:
        agg = MetricsAggregator([c])
        out = [(await agg.collect_all())["c"]]
        c.reason = "device gone"
        out.append((await agg.collect_all())["c"])
        c.reason = None
        c.raises = OSError("EIO")
        out.append((await agg.collect_all())["c"])
        c.raises = None
        c.delay = 1.0
        out.append((await agg.collect_all())["c"])
        await agg.aclose()
        return out

    good, gone, failed, stale = asyncio.run(main())
    assert good.data == {"v": 1} and not good.meta.stale
    assert not gone.meta.available and gone.data["reason"] == "device gone"
    assert failed.meta.error == "OSError: EIO"
    assert stale.meta.stale and stale.data == {"v": 1}


def test_disabled_collectors_are_skipped() -> None:
    off = FakeCollector("off", enabled=False)
    (res,) = collect(MetricsAggregator([FakeCollector("on"), off]))
    assert list(res) == ["on"] and off.calls == 0


def test_membership() -> None:
    a, b = FakeCollector("a"), FakeCollector("b", delay=10.0)
    agg = MetricsAggregator([a])
    with pytest.raises(ValueError, match="already registered"):
        agg.add(FakeCollector("a"))
    agg.add(b)
    assert agg.names() == ["a", "b"] and agg.get("b") is b and agg.get("zz") is None

    async def main() -> None:
        await agg.collect_all(deadline=0.01)
        assert agg.in_flight() == 1
        assert agg.remove("b") is b
        await asyncio.sleep(0)
        assert agg.in_flight() == 0
        await agg.aclose()

    asyncio.run(main())
    assert b.closed and a.closed
    assert agg.collectors() == [a]


def test_aclose_cancels_in_flight_collections() -> None:
    c = FakeCollector("c", delay=30.0)

    async def main() -> None:
        agg = MetricsAggregator([c])
        await agg.collect_all(deadline=0.01)
        t0 = time.perf_counter()
        await agg.aclose()
        assert time.perf_counter() - t0 < 1.0

    asyncio.run(main())
    assert c.closed and c.running == 0


def test_split_meta() -> None:
    data, meta = split_meta({"timestamp": 5.0, "duration_ms": 1.5, "error": None, "x": 1})
    assert data == {"x": 1}
    assert (meta.timestamp, meta.duration_ms, meta.error, meta.available) == (5.0, 1.5, None, True)
    data, meta = split_meta({"available": False, "reason": "r"})
    assert not meta.available and data == {"available": False, "reason": "r"}
