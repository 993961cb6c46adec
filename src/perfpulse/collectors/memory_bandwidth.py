"""DRAM bandwidth from the memory controllers' uncore PMUs, and page I/O from /proc/vmstat beside it.

DRAM read/write bytes per second come from the integrated memory controller PMUs the kernel describes in
sysfs (``_imc.py`` lists the families: Intel server ``uncore_imc_<n>`` cas_count_read/write summed over
channels, client ``uncore_imc`` data_reads/data_writes, the free-running variants), scaled by each event's
``.scale``/``.unit`` and opened in counting mode on the PMU's ``cpumask`` CPUs (one per socket). Where
there is no such PMU (VMs, AMD whose UMC/DF PMUs publish no named events), ``dram`` is
``{"available": False, "reason": ...}`` and the collector stays available for page I/O.

Page I/O (pgpgin/pgpgout, pswpin/pswpout from /proc/vmstat) is block-layer paging traffic, not memory
bandwidth; it is reported in its own ``page_io`` block and never under a bandwidth name.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from perfpulse.collectors._imc import DramCounters
from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.keyvalue import parse_vmstat
from perfpulse.rates import CounterTracker

#: Above any DRAM subsystem built (12-channel DDR5 is ~0.5 TB/s per socket); a larger rate is a glitch.
MAX_BYTES_PER_SECOND = 1e13
RETRY_SECONDS = 60.0
NO_PMU_HINT = (
    "DRAM bandwidth needs bare metal with an Intel uncore IMC PMU (uncore_imc*, intel_uncore driver) and "
    "perf access (root, CAP_PERFMON, or perf_event_paranoid <= 0); virtual machines rarely expose it"
)


def _spec(name: str, unit: str, desc: str, path: str, labels: tuple[str, ...] = ()) -> MetricSpec:
    return MetricSpec(name, unit, "gauge", desc, path, labels)


@register
class MemoryBandwidthCollector(BaseCollector):
    name = "memory_bandwidth"
    catalogue = (
        _spec(
            "memory_dram_read_bytes_per_second",
            "bytes_per_second",
            "DRAM reads, all channels",
            "dram.read_bytes_per_second",
        ),
        _spec(
            "memory_dram_write_bytes_per_second",
            "bytes_per_second",
            "DRAM writes, all channels",
            "dram.write_bytes_per_second",
        ),
        _spec(
            "memory_dram_channel_read_bytes_per_second",
            "bytes_per_second",
            "DRAM reads per memory-controller PMU",
            "dram.channels.*.read_bytes_per_second",
            ("pmu",),
        ),
        _spec(
            "memory_dram_channel_write_bytes_per_second",
            "bytes_per_second",
            "DRAM writes per memory-controller PMU",
            "dram.channels.*.write_bytes_per_second",
            ("pmu",),
        ),
        _spec(
            "memory_page_io_in_bytes_per_second",
            "bytes_per_second",
            "Paged in from block devices (pgpgin)",
            "page_io.in_bytes_per_second",
        ),
        _spec(
            "memory_page_io_out_bytes_per_second",
            "bytes_per_second",
            "Paged out to block devices (pgpgout)",
            "page_io.out_bytes_per_second",
        ),
        _spec(
            "memory_page_io_swap_in_pages_per_second",
            "per_second",
            "Pages swapped in (pswpin)",
            "page_io.swap_in_pages_per_second",
        ),
        _spec(
            "memory_page_io_swap_out_pages_per_second",
            "per_second",
            "Pages swapped out (pswpout)",
            "page_io.swap_out_pages_per_second",
        ),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        syscalls: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._syscalls = syscalls
        self._clock = clock
        self._tracker = CounterTracker(clock=clock)
        self._dram: DramCounters | None = None
        self._dram_reason: str | None = None
        self._retry_at = float("-inf")

    def unavailable_reason(self) -> str | None:
        if (self.roots.proc / "vmstat").is_file():
            return None
        if any(self.roots.sys.glob("bus/event_source/devices/uncore_imc*")):
            return None
        return f"neither {self.roots.proc}/vmstat nor an uncore_imc PMU exists"

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self.collect_sync

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self.collect_sync)

    def collect_sync(self) -> dict[str, Any]:
        now = self._clock()
        if self._dram is None and now >= self._retry_at:
            # An unavailable PMU is looked for again once a minute (a driver loaded later), not every tick.
            dram = DramCounters(self.roots.sys, self._syscalls)
            self._dram_reason = dram.open()
            self._dram = dram if self._dram_reason is None else None
            self._retry_at = now + RETRY_SECONDS
        with self._tracker.tick(now):
            out = {"dram": self._dram_block(), "page_io": self._page_io()}
        if out["dram"].get("available") is False and out["page_io"].get("available") is False:
            return unavailable(
                f"DRAM: {out['dram']['reason']}; page I/O: {out['page_io']['reason']}", NO_PMU_HINT
            )
        return out

    def _dram_block(self) -> dict[str, Any]:
        if self._dram is None:
            return unavailable(self._dram_reason or "not opened", NO_PMU_HINT)
        totals, ratio = self._dram.read()
        channels: dict[str, dict[str, float | None]] = {}
        sums: dict[str, float | None] = {"read": 0.0, "write": 0.0}
        for (pmu, direction), value in sorted(totals.items()):
            rate = None
            if value is not None:
                rate = self._tracker.per_second(("dram", pmu, direction), value, limit=MAX_BYTES_PER_SECOND)
            channels.setdefault(pmu, {})[f"{direction}_bytes_per_second"] = rate
            before = sums[direction]
            sums[direction] = None if before is None or rate is None else before + rate
        block: dict[str, Any] = {
            "available": True,
            "source": self._dram.family,
            "read_bytes_per_second": sums["read"] if channels else None,
            "write_bytes_per_second": sums["write"] if channels else None,
            "running_ratio": ratio,
            "channels": channels,
        }
        if self._dram.failed:
            block["failed_events"] = self._dram.failed
        return block

    def _page_io(self) -> dict[str, Any]:
        path = self.roots.proc / "vmstat"
        try:
            vm = parse_vmstat(path.read_bytes())
        except OSError as exc:
            return unavailable(f"cannot read {path}: {exc.strerror}")
        except ParseError as exc:
            return unavailable(f"{path}: {exc}")
        rate = self._tracker.per_second
        block: dict[str, Any] = {"available": True}
        # pgpgin/pgpgout are counted in 512-byte sectors and shown halved, in KiB (mm/vmstat.c,
        # vmstat_start); pswpin/pswpout are pages.
        for key, field, scale in (
            ("in_bytes_per_second", "pgpgin", 1024),
            ("out_bytes_per_second", "pgpgout", 1024),
            ("swap_in_pages_per_second", "pswpin", 1),
            ("swap_out_pages_per_second", "pswpout", 1),
        ):
            value = vm.get(field)
            r = None if value is None else rate(("vmstat", field), value)
            block[key] = None if r is None else r * scale
        return block

    def close(self) -> None:
        if self._dram is not None:
            self._dram.close()
            self._dram = None
        self._dram_reason = None
        self._retry_at = float("-inf")
