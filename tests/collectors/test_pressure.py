from __future__ import annotations

import asyncio
import os
from pathlib import Path

from support import require
from system_machines import MACHINES, Clock, catalogue_gaps, copy_tree, numbers, scenario, ticks

from perfpulse.collectors.base import Roots
from perfpulse.collectors.pressure import HINT, REASON, PressureCollector


def test_large_machine_with_irq() -> None:
    clock = Clock()
    first, second = ticks(PressureCollector(clock=clock), clock, scenario("large"))
    assert first["resources"]["io"]["some"]["stall_rate"] is None
    res = second["resources"]
    assert set(res) == {"cpu", "memory", "io", "irq"}
    assert set(res["irq"]) == {"full"}  # irq has no "some" line
    assert res["io"]["some"]["avg10"] == 20.4 and res["io"]["full"]["avg300"] == 6.1
    assert res["io"]["some"]["stall_rate"] == 0.204
    assert res["memory"]["full"]["stall_rate"] == 0.011
    assert res["irq"]["full"]["stall_rate"] == 0.005
    assert res["cpu"]["some"]["total_seconds"] == (987_654_321 + 125_000) / 1e6
    assert catalogue_gaps(PressureCollector(), second) == []


def test_captured_machine_without_irq_file() -> None:
    clock = Clock()
    _, second = ticks(PressureCollector(clock=clock), clock, scenario("captured"))
    assert second["available"] is True and "errors" not in second
    assert set(second["resources"]) == {"cpu", "memory", "io"}
    for scopes in second["resources"].values():
        for line in scopes.values():
            assert 0.0 <= line["stall_rate"] <= 1.0


def test_minimal_machine_is_unavailable_with_reason_and_hint() -> None:
    c = PressureCollector(roots=Roots.under(MACHINES / "minimal/t0"))
    assert c.is_available() is False
    assert c.unavailable_reason() == REASON and "CONFIG_PSI" in REASON
    assert c.describe()["hint"] == HINT
    out = asyncio.run(c.collect())
    assert out == {"available": False, "reason": REASON, "hint": HINT}


def test_counters_going_backwards_give_no_rate() -> None:
    clock = Clock()
    _, second = ticks(PressureCollector(clock=clock), clock, [MACHINES / "large/t1", MACHINES / "large/t0"])
    rates = [ln["stall_rate"] for s in second["resources"].values() for ln in s.values()]
    assert len(rates) == 7
    assert [r for r in rates if r is not None] == [0.0]  # cpu "full" stays at 0 in both: a true 0
    assert min(numbers(second)) >= 0


def test_a_corrupt_file_is_reported_and_the_others_still_read(tmp_path: Path) -> None:
    t0 = copy_tree(MACHINES / "large/t0", tmp_path / "t0")
    (t0 / "proc/pressure/memory").write_text("some avg10=x avg60=0 avg300=0 total=1\n")
    out = asyncio.run(PressureCollector(roots=Roots.under(t0)).collect())
    assert out["available"] is True
    assert "memory" not in out["resources"] and "memory" in out["errors"]
    assert set(out["resources"]) == {"cpu", "io", "irq"}


def test_this_machine() -> None:
    require(os.path.exists("/proc/pressure/cpu"), "needs a kernel with PSI enabled")
    c = PressureCollector()
    asyncio.run(c.collect())
    out = asyncio.run(c.collect())
    assert out["available"] is True
    line = out["resources"]["cpu"]["some"]
    assert line["stall_rate"] is not None and 0.0 <= line["stall_rate"] <= 1.0
