from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

from system_machines import (
    MACHINES,
    Clock,
    catalogue_gaps,
    copy_tree,
    drop_lines,
    edit,
    large,
    numbers,
    scenario,
    ticks,
)

from perfpulse.collectors.base import Roots
from perfpulse.collectors.cpu import CpuCollector
from perfpulse.procfs.stat import CPU_MODES


def test_large_machine_rates_match_the_generated_increments() -> None:
    clock = Clock()
    first, second = ticks(CpuCollector(clock=clock), clock, scenario("large"))
    assert first["available"] is True
    assert first["busy"] is None and first["context_switches_per_second"] is None  # nothing to subtract yet
    assert second["count"] == 64
    for cpu in (0, 17, 63):
        step = [b - a for a, b in zip(large.cpu_ticks(cpu, 0), large.cpu_ticks(cpu, 1), strict=True)]
        core = second["per_core"][str(cpu)]
        for i, mode in enumerate(CPU_MODES):
            assert core["modes"][mode] == step[i] / 100
        assert math.isclose(sum(core["modes"][m] for m in CPU_MODES[:8]), 1.0)
        assert core["frequency_hz"] == large.cpu_freq_khz(cpu, 1) * 1000
    assert math.isclose(sum(second["modes"][m] for m in CPU_MODES[:8]), 1.0)
    assert second["context_switches_per_second"] == 400_000
    assert second["interrupts_per_second"] == 250_000
    assert second["softirqs_per_second"] == 180_000
    assert second["forks_per_second"] == 1_500
    assert (second["procs_running"], second["procs_blocked"]) == (10, 1)
    assert second["load"] == {"1m": 32.25, "5m": 28.4, "15m": 25.1}
    temps = second["temperatures"]
    assert temps["available"] is True
    assert temps["sensors"]["coretemp_0"]["Package id 0"] == 62.0
    assert temps["sensors"]["coretemp_1"]["Package id 1"] == 58.0
    assert temps["sensors"]["nvme_2"]["Composite"] == 42.85
    assert temps["sensors"]["acpitz"]["temp1"] == 28.8  # no label file: the input's own name
    assert catalogue_gaps(CpuCollector(), second) == []


def test_captured_machine() -> None:
    """The VM this was captured on has no cpufreq and no sensors: cpuinfo's MHz, and a reason."""
    clock = Clock()
    _, second = ticks(CpuCollector(clock=clock), clock, scenario("captured"))
    assert second["count"] == 2
    assert 0.0 <= second["busy"] <= 1.0
    assert math.isclose(sum(second["modes"][m] for m in CPU_MODES[:8]), 1.0)
    assert second["per_core"]["0"]["frequency_hz"] > 1e8
    assert second["temperatures"]["available"] is False
    assert "no temperature sensors" in second["temperatures"]["reason"]
    assert second["context_switches_per_second"] > 0


def test_counters_going_backwards_give_no_rate(tmp_path: Path) -> None:
    """A reset (t1 lower than t0 everywhere): every rate is None, none negative."""
    clock = Clock()
    trees = [MACHINES / "large/t1", MACHINES / "large/t0"]
    _, second = ticks(CpuCollector(clock=clock), clock, trees)
    assert second["busy"] is None
    assert all(v is None for v in second["modes"].values())
    assert all(core["busy"] is None for core in second["per_core"].values())
    assert second["context_switches_per_second"] is None and second["forks_per_second"] is None
    assert min(numbers(second)) >= 0


def test_offlined_cpu_starts_fresh_when_it_returns(tmp_path: Path) -> None:
    t0 = MACHINES / "large/t0"
    t1 = copy_tree(MACHINES / "large/t1", tmp_path / "t1")
    drop_lines(t1 / "proc/stat", "cpu63 ")
    t2 = copy_tree(MACHINES / "large/t1", tmp_path / "t2")
    edit(t2 / "proc/stat", lambda s: s.replace("ctxt 3", "ctxt 9"))
    clock = Clock()
    _, second, third = ticks(CpuCollector(clock=clock), clock, [t0, t1, t2])
    assert "63" not in second["per_core"] and second["count"] == 63
    assert second["per_core"]["62"]["busy"] is not None
    assert third["per_core"]["63"]["busy"] is None  # first sight again, not a delta against t0
    assert third["per_core"]["62"]["busy"] is None  # no ticks elapsed for cpu62 between t1 and t2
    assert third["context_switches_per_second"] is None  # 6e10 switches in 1 s is a glitch, not load


def test_boot_id_change_forgets_everything(tmp_path: Path) -> None:
    t1 = copy_tree(MACHINES / "large/t1", tmp_path / "t1")
    (t1 / "proc/sys/kernel/random/boot_id").write_text("00000000-0000-0000-0000-000000000000\n")
    clock = Clock()
    _, second = ticks(CpuCollector(clock=clock), clock, [MACHINES / "large/t0", t1])
    assert second["busy"] is None and second["forks_per_second"] is None


def test_missing_proc_stat_is_unavailable(tmp_path: Path) -> None:
    c = CpuCollector(roots=Roots.under(tmp_path))
    assert c.is_available() is False
    out = asyncio.run(c.collect())
    assert out["available"] is False and "stat" in out["reason"]


def test_this_machine() -> None:
    c = CpuCollector()
    assert c.is_available()
    asyncio.run(c.collect())
    # Burn a little CPU so the second tick has ticks to divide.
    end = time.perf_counter() + 0.15
    while time.perf_counter() < end:
        pass
    out = asyncio.run(c.collect())
    assert out["count"] == len(out["per_core"]) >= 1
    assert out["busy"] is not None and 0.0 < out["busy"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in out["modes"].values() if v is not None)
    assert out["load"]["1m"] >= 0.0
    assert out["forks_per_second"] is not None and out["forks_per_second"] >= 0.0
    assert min(numbers(out)) >= 0


def test_minimal_machine_still_works() -> None:
    """No PSI and no diskstats there: nothing the CPU collector needs is missing."""
    clock = Clock()
    _, second = ticks(CpuCollector(clock=clock), clock, scenario("minimal"))
    assert second["available"] is True and second["busy"] is not None


def test_clock_tick_of_the_fixture_machine_can_be_given() -> None:
    clock = Clock()
    _, second = ticks(CpuCollector(clock=clock, clk_tck=250), clock, scenario("large"))
    user = sum(large.cpu_ticks(c, 1)[0] for c in range(64))
    assert second["seconds"]["user"] == user / 250
