"""Memory: RAM and swap occupancy from /proc/meminfo, swap traffic and page faults from /proc/vmstat.

"used" is ``MemTotal - MemAvailable`` (what ``free`` of procps-ng 4.0.2 prints): memory that cannot be
reclaimed without swapping. "cached" is ``Cached + SReclaimable`` like ``free``'s buff/cache column minus
buffers. ``MemAvailable`` exists since 3.14; on older kernels "available" falls back to free + buffers +
cached, an optimistic estimate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.files import read, why
from perfpulse.procfs.keyvalue import parse_meminfo, parse_vmstat
from perfpulse.rates import CounterTracker, read_boot_id

#: Page size for vmstat's page counters (pswpin, pswpout): this machine's unless the constructor is given
#: the page size of the machine a fixture tree comes from.
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
_MAX_FAULTS_PER_S = 1e10
_MAX_SWAP_BYTES_PER_S = 1e12

_GAUGES = (
    ("total", "Physical memory the kernel manages"),
    ("available", "Memory available for new work without swapping"),
    ("used", "Memory in use: total minus available"),
    ("free", "Memory not used for anything"),
    ("buffers", "Block device buffers"),
    ("cached", "Page cache plus reclaimable slab"),
    ("shared", "Shared memory and tmpfs"),
    ("slab", "Kernel slab allocations"),
    ("dirty", "Pages waiting to be written back"),
    ("writeback", "Pages being written back now"),
)


def _spec(name: str, unit: str, desc: str, path: str) -> MetricSpec:
    return MetricSpec(name, unit, "gauge", desc, path)


@register
class MemoryCollector(BaseCollector):
    name = "memory"
    catalogue = (
        *(_spec(f"memory_{k}_bytes", "bytes", d, f"{k}_bytes") for k, d in _GAUGES),
        _spec("memory_used_ratio", "ratio", "Share of memory in use", "used_ratio"),
        _spec("memory_hugepages_total", "count", "Huge pages in the pool", "hugepages.total"),
        _spec("memory_hugepages_free", "count", "Huge pages not allocated", "hugepages.free"),
        _spec(
            "memory_hugepages_reserved", "count", "Huge pages reserved, not yet faulted", "hugepages.reserved"
        ),
        _spec("memory_hugepages_surplus", "count", "Huge pages above the pool size", "hugepages.surplus"),
        _spec("memory_hugepage_size_bytes", "bytes", "Default huge page size", "hugepages.size_bytes"),
        _spec("memory_swap_total_bytes", "bytes", "Swap space", "swap.total_bytes"),
        _spec("memory_swap_used_bytes", "bytes", "Swap space in use", "swap.used_bytes"),
        _spec("memory_swap_free_bytes", "bytes", "Swap space free", "swap.free_bytes"),
        _spec(
            "memory_swap_in_bytes_per_second", "bytes_per_second", "Swapped in", "swap.in_bytes_per_second"
        ),
        _spec(
            "memory_swap_out_bytes_per_second", "bytes_per_second", "Swapped out", "swap.out_bytes_per_second"
        ),
        _spec(
            "memory_minor_faults_per_second",
            "per_second",
            "Faults served without I/O",
            "faults.minor_per_second",
        ),
        _spec(
            "memory_major_faults_per_second",
            "per_second",
            "Faults that needed I/O",
            "faults.major_per_second",
        ),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        page_size: int | None = None,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._tracker = CounterTracker(clock=clock, boot_id=lambda: read_boot_id(str(self.roots.proc)))
        self._page = page_size or PAGE_BYTES

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self._collect

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self._collect)

    def _collect(self) -> dict[str, Any]:
        path = self.roots.proc / "meminfo"
        try:
            mi = parse_meminfo(read(path))
        except (OSError, ParseError) as exc:
            return unavailable(f"cannot read {path}: {why(exc)}", "check that /proc is mounted")
        try:
            vm: dict[str, int] | None = parse_vmstat(read(self.roots.proc / "vmstat"))
        except (OSError, ParseError):
            vm = None
        total = mi.get("MemTotal")
        free = mi.get("MemFree")
        buffers = mi.get("Buffers")
        cached = None if "Cached" not in mi else mi["Cached"] + mi.get("SReclaimable", 0)
        available = mi.get("MemAvailable")
        if available is None and None not in (free, buffers, cached):
            available = (free or 0) + (buffers or 0) + (cached or 0)
        used = None if total is None or available is None else max(0, total - available)
        out: dict[str, Any] = {
            "available": True,
            "total_bytes": total,
            "available_bytes": available,
            "used_bytes": used,
            "free_bytes": free,
            "buffers_bytes": buffers,
            "cached_bytes": cached,
            "shared_bytes": mi.get("Shmem"),
            "slab_bytes": mi.get("Slab"),
            "dirty_bytes": mi.get("Dirty"),
            "writeback_bytes": mi.get("Writeback"),
            "used_ratio": None if not total or used is None else min(1.0, used / total),
            "hugepages": {
                "total": mi.get("HugePages_Total"),
                "free": mi.get("HugePages_Free"),
                "reserved": mi.get("HugePages_Rsvd"),
                "surplus": mi.get("HugePages_Surp"),
                "size_bytes": mi.get("Hugepagesize"),
            },
        }
        swap_total, swap_free = mi.get("SwapTotal"), mi.get("SwapFree")
        swap: dict[str, Any] = {
            "total_bytes": swap_total,
            "free_bytes": swap_free,
            "used_bytes": None if swap_total is None or swap_free is None else max(0, swap_total - swap_free),
            "in_bytes_per_second": None,
            "out_bytes_per_second": None,
        }
        faults: dict[str, Any] = {"minor_per_second": None, "major_per_second": None}
        tr = self._tracker
        with tr.tick():
            if vm is not None:
                for key, field in (("in_bytes_per_second", "pswpin"), ("out_bytes_per_second", "pswpout")):
                    if field in vm:
                        rate = tr.per_second(field, vm[field] * self._page, limit=_MAX_SWAP_BYTES_PER_S)
                        swap[key] = rate
                major = vm.get("pgmajfault")
                if "pgfault" in vm and major is not None:
                    # pgfault counts every fault, major ones included (mm/vmstat.c).
                    minor = max(0, vm["pgfault"] - major)
                    faults["minor_per_second"] = tr.per_second("minor", minor, limit=_MAX_FAULTS_PER_S)
                if major is not None:
                    faults["major_per_second"] = tr.per_second("major", major, limit=_MAX_FAULTS_PER_S)
        out["swap"] = swap
        out["faults"] = faults
        return out
