from __future__ import annotations

import asyncio
import os
from pathlib import Path

from system_machines import MACHINES, Clock, catalogue_gaps, copy_tree, edit, numbers, scenario, ticks

from perfpulse.collectors.base import Roots
from perfpulse.collectors.memory import MemoryCollector

KIB = 1024
PAGE = os.sysconf("SC_PAGE_SIZE")


def test_large_machine() -> None:
    clock = Clock()
    first, second = ticks(MemoryCollector(clock=clock), clock, scenario("large"))
    assert first["swap"]["in_bytes_per_second"] is None and first["faults"]["major_per_second"] is None
    gib = 1 << 30
    assert second["total_bytes"] == 512 * gib
    assert second["available_bytes"] == 380 * gib - 4096 * KIB
    assert second["used_bytes"] == second["total_bytes"] - second["available_bytes"]
    assert second["cached_bytes"] == 150 * gib + 2048 * KIB + 9 * gib  # Cached + SReclaimable
    assert second["buffers_bytes"] == 2 * gib and second["shared_bytes"] == 4 * gib
    assert second["slab_bytes"] == 12 * gib
    assert second["dirty_bytes"] == (123_456 + 1000) * KIB and second["writeback_bytes"] == 2048 * KIB
    assert 0 < second["used_ratio"] < 1
    assert second["hugepages"] == {
        "total": 1024,
        "free": 512,
        "reserved": 16,
        "surplus": 0,
        "size_bytes": 2 << 20,
    }
    swap = second["swap"]
    assert swap["total_bytes"] == 64 * gib and swap["used_bytes"] == gib + 256 * KIB
    assert swap["in_bytes_per_second"] == 25 * PAGE and swap["out_bytes_per_second"] == 64 * PAGE
    assert second["faults"] == {"minor_per_second": 180_000 - 30, "major_per_second": 30}
    assert catalogue_gaps(MemoryCollector(), second) == []


def test_captured_machine() -> None:
    clock = Clock()
    _, second = ticks(MemoryCollector(clock=clock), clock, scenario("captured"))
    assert second["total_bytes"] > second["available_bytes"] > 0
    assert second["swap"]["total_bytes"] == 0 and second["swap"]["used_bytes"] == 0
    assert second["faults"]["minor_per_second"] > 0


def test_counters_going_backwards_give_no_rate() -> None:
    clock = Clock()
    _, second = ticks(MemoryCollector(clock=clock), clock, [MACHINES / "large/t1", MACHINES / "large/t0"])
    assert second["swap"]["in_bytes_per_second"] is None and second["swap"]["out_bytes_per_second"] is None
    assert second["faults"] == {"minor_per_second": None, "major_per_second": None}
    assert min(numbers(second)) >= 0


def test_kernel_without_memavailable(tmp_path: Path) -> None:
    """Before 3.14 there is no MemAvailable: free + buffers + cached stands in."""
    t1 = copy_tree(MACHINES / "large/t1", tmp_path / "t1")
    edit(t1 / "proc/meminfo", lambda s: "".join(ln for ln in s.splitlines(True) if "MemAvailable" not in ln))
    out = asyncio.run(MemoryCollector(roots=Roots.under(t1)).collect())
    assert out["available_bytes"] == out["free_bytes"] + out["buffers_bytes"] + out["cached_bytes"]


def test_corrupt_meminfo_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/meminfo").write_text("MemTotal: lots kB\n")
    out = asyncio.run(MemoryCollector(roots=Roots.under(tmp_path)).collect())
    assert out["available"] is False and "meminfo" in out["reason"] and "lots" in out["reason"]


def test_this_machine() -> None:
    c = MemoryCollector()
    asyncio.run(c.collect())
    blob = bytearray(32 << 20)  # touch fresh pages so the second tick sees minor faults
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    out = asyncio.run(c.collect())
    assert out["total_bytes"] >= out["available_bytes"] > 0
    assert out["faults"]["minor_per_second"] is not None and out["faults"]["minor_per_second"] > 0
    assert min(numbers(out)) >= 0


def test_minimal_machine_still_works() -> None:
    clock = Clock()
    _, second = ticks(MemoryCollector(clock=clock), clock, scenario("minimal"))
    assert second["available"] is True and second["faults"]["minor_per_second"] is not None


def test_page_size_of_the_fixture_machine_can_be_given() -> None:
    clock = Clock()
    _, second = ticks(MemoryCollector(clock=clock, page_size=65536), clock, scenario("large"))
    assert second["swap"]["in_bytes_per_second"] == 25 * 65536
