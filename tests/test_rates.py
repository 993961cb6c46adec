"""CounterTracker: deltas and rates from cumulative counters, with every kind of reset."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from perfpulse.rates import CounterTracker, Rate, read_boot_id
from perfpulse.testing import FakeClock


def test_first_sight_gives_nothing_then_delta_over_monotonic_time() -> None:
    clock = FakeClock(start=10.0)
    t = CounterTracker(clock=clock.monotonic)
    with t.tick():
        assert t.rate("rx", 1000) is None
    clock.advance(2.0)
    with t.tick():
        r = t.rate("rx", 1500)
    assert r == Rate(delta=500, seconds=2.0)
    assert r.per_second == 250.0


def test_every_rate_in_a_tick_uses_the_tick_time() -> None:
    """Reading 100 interfaces takes time; they must all divide by the same interval."""
    clock = FakeClock(start=0.0)
    t = CounterTracker(clock=clock.monotonic)
    with t.tick():
        t.rate("a", 0)
        t.rate("b", 0)
    clock.advance(1.0)
    with t.tick():
        ra = t.rate("a", 10)
        clock.advance(0.3)  # the clock moves mid-tick; the tick time does not
        rb = t.rate("b", 10)
    assert ra is not None and rb is not None
    assert ra.seconds == rb.seconds == 1.0


def test_explicit_tick_time_wins_over_the_clock() -> None:
    t = CounterTracker(clock=lambda: 999.0)
    with t.tick(now=1.0):
        t.rate("k", 5)
    with t.tick(now=3.0):
        assert t.per_second("k", 9) == 2.0


def test_decrease_is_a_reset_and_the_next_interval_counts_from_the_new_base() -> None:
    clock = FakeClock(start=0.0)
    t = CounterTracker(clock=clock.monotonic)
    for value, expect in [(4_294_967_000, None), (4_294_967_290, 290.0), (40, None), (140, 100.0)]:
        with t.tick():
            assert t.per_second("c", value) == expect
        clock.advance(1.0)


def test_rate_above_limit_is_treated_as_a_reset() -> None:
    clock = FakeClock()
    t = CounterTracker(clock=clock.monotonic)
    with t.tick():
        t.rate("nic", 0)
    clock.advance(1.0)
    with t.tick():
        assert t.rate("nic", 10**15, limit=1e12) is None
    clock.advance(1.0)
    with t.tick():
        assert t.per_second("nic", 10**15 + 5000, limit=1e12) == 5000.0


def test_no_rate_over_a_zero_or_negative_interval() -> None:
    t = CounterTracker()
    with t.tick(now=5.0):
        t.rate("k", 1)
    with t.tick(now=5.0):
        assert t.rate("k", 2) is None
    with t.tick(now=4.0):
        assert t.rate("k", 3) is None


def test_a_key_missing_for_one_tick_starts_fresh() -> None:
    """An interface that vanished and came back (or a recreated dm device) must not subtract the old value."""
    clock = FakeClock()
    t = CounterTracker(clock=clock.monotonic)
    with t.tick():
        t.rate("sdb", 1_000)
        t.rate("sda", 0)
    clock.advance(1.0)
    with t.tick():
        t.rate("sda", 10)  # sdb gone this tick
    assert len(t) == 1
    clock.advance(1.0)
    with t.tick():
        assert t.rate("sdb", 5_000) is None  # back, with a new baseline
        assert t.per_second("sda", 20) == 10.0


def test_pid_reuse_is_a_new_key_when_start_time_is_in_it() -> None:
    clock = FakeClock()
    t = CounterTracker(clock=clock.monotonic)
    with t.tick():
        t.rate((4242, 1000), 50)
    clock.advance(1.0)
    with t.tick():
        # Same PID, another process (another start time): its counters are not compared with the old one's.
        assert t.rate((4242, 7777), 10) is None
    assert len(t) == 1


def test_boot_id_change_forgets_everything() -> None:
    clock = FakeClock()
    boot = {"id": "A"}
    t = CounterTracker(clock=clock.monotonic, boot_id=lambda: boot["id"])
    with t.tick():
        t.rate("x", 100)
    clock.advance(1.0)
    boot["id"] = "B"  # a restored VM: counters restarted, maybe even above the old values
    with t.tick():
        assert t.rate("x", 150) is None
    clock.advance(1.0)
    with t.tick():
        assert t.per_second("x", 160) == 10.0


def test_outside_a_tick_each_call_reads_the_clock() -> None:
    clock = FakeClock(start=0.0)
    t = CounterTracker(clock=clock.monotonic)
    assert t.rate("k", 0) is None
    clock.advance(2.0)
    assert t.per_second("k", 10) == 5.0


def test_non_finite_values_are_refused_and_forget_the_key() -> None:
    clock = FakeClock()
    t = CounterTracker(clock=clock.monotonic)
    with t.tick():
        t.rate("k", 10)
    clock.advance(1.0)
    with t.tick():
        assert t.rate("k", math.nan) is None
        assert t.rate("j", math.inf) is None
    assert len(t) == 0
    clock.advance(1.0)
    with t.tick():
        assert t.rate("k", 20) is None  # fresh start, not (20 - 10) / 2


def test_forget() -> None:
    t = CounterTracker()
    t.rate("k", 1)
    t.forget("k")
    t.forget("never-seen")
    assert len(t) == 0


def test_read_boot_id(tmp_path: object) -> None:
    from pathlib import Path

    base = Path(str(tmp_path))
    assert read_boot_id(str(base)) is None
    (base / "sys/kernel/random").mkdir(parents=True)
    (base / "sys/kernel/random/boot_id").write_text("0d8c-1234\n")
    assert read_boot_id(str(base)) == "0d8c-1234"
    real = read_boot_id()
    assert real is None or len(real) == 36


counters = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=2**64),  # counter value, resets included
        st.floats(min_value=0.0, max_value=10.0, allow_nan=False),  # time step, zero included
        st.booleans(),  # present this tick?
    ),
    min_size=1,
    max_size=40,
)


@given(counters, st.one_of(st.none(), st.floats(min_value=1.0, max_value=1e12)))
def test_never_a_negative_or_over_limit_rate(
    steps: list[tuple[int, float, bool]], limit: float | None
) -> None:
    now = 0.0
    t = CounterTracker(clock=lambda: now)
    prev: tuple[float, int] | None = None
    for value, step, present in steps:
        now += step
        with t.tick(now=now):
            if not present:
                prev = None
                continue
            r = t.rate("k", value, limit=limit)
        if r is not None:
            assert prev is not None
            assert r.delta == value - prev[1] >= 0
            assert r.seconds == now - prev[0] > 0
            assert r.per_second >= 0
            if limit is not None:
                assert r.per_second <= limit
        prev = (now, value)
