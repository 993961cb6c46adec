"""Memory-controller (IMC) PMU events: which ones measure DRAM traffic, opening them, bytes from counts.

Families of Intel IMC PMUs the kernel describes in sysfs, in order of preference (one family is used, so
the same traffic is never counted twice through two interfaces):

- servers: ``uncore_imc_<n>/cas_count_read|cas_count_write/``, one PMU per channel;
- servers with free-running counters (Ice Lake SP and later): ``uncore_imc_free_running_<n>/read|write/``;
- clients: ``uncore_imc/data_reads|data_writes/`` (Sandy Bridge to Comet Lake) or
  ``uncore_imc_free_running_<n>/data_read|data_write/`` (Tiger Lake, Alder Lake and later).

Each count is converted with the event's ``.scale`` and ``.unit`` (Intel: 6.103515625e-5 MiB, i.e. one
64-byte line). AMD's ``amd_umc_<n>``/``amd_df`` PMUs publish format fields but no named DRAM events.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from perfpulse.perf.counting import Counters
from perfpulse.perf.events import parse_event
from perfpulse.perf.pmu import discover_pmus

#: (description, PMU name pattern, read event, write event), in order of preference. One family is used.
FAMILIES = (
    ("Intel server IMC", re.compile(r"^uncore_imc_\d+$"), "cas_count_read", "cas_count_write"),
    ("Intel server IMC free-running", re.compile(r"^uncore_imc_free_running_\d+$"), "read", "write"),
    ("Intel client IMC", re.compile(r"^uncore_imc$"), "data_reads", "data_writes"),
    (
        "Intel client IMC free-running",
        re.compile(r"^uncore_imc_free_running_\d+$"),
        "data_read",
        "data_write",
    ),
)
_AMD_PMU = re.compile(r"^amd_(umc_\d+|df)$")
UNIT_BYTES = {"B": 1, "bytes": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1000, "MB": 1000**2}


class DramCounters:
    """The opened IMC events of one family: cumulative scaled bytes per (pmu, direction)."""

    def __init__(self, sys_root: Path, syscalls: Any) -> None:
        self.sys_root = sys_root
        self.syscalls = syscalls
        self.counters: Any = None
        self.family = ""
        self.events: dict[
            str, tuple[str, str, float]
        ] = {}  # event name -> (pmu, "read"/"write", bytes/count)
        self.failed: dict[str, str] = {}
        self._prev: Any = None
        self._bytes: dict[tuple[str, str], float] = {}

    def open(self) -> str | None:
        """None when counting started, else why DRAM bandwidth is unavailable here."""
        pmus = discover_pmus(self.sys_root)
        specs = []
        for family, pattern, read_ev, write_ev in FAMILIES:
            boxes = sorted(
                (
                    p
                    for n, p in pmus.items()
                    if pattern.match(n) and read_ev in p.events and write_ev in p.events
                ),
                key=lambda p: (len(p.name), p.name),
            )
            if not boxes:
                continue
            for box in boxes:
                for direction, ev in (("read", read_ev), ("write", write_ev)):
                    try:
                        spec = parse_event(f"{box.name}/{ev}/", pmus)
                    except ValueError as exc:  # sysfs terms this kernel's format files do not define
                        return f"{box.name}/{ev}/ cannot be encoded: {exc}"
                    unit_bytes = UNIT_BYTES.get(spec.unit or "")
                    if unit_bytes is None:
                        return (
                            f"{box.name}/{ev}/ has unit {spec.unit!r}, which perfpulse cannot turn into bytes"
                        )
                    specs.append(spec)
                    self.events[spec.name] = (box.name, direction, spec.scale * unit_bytes)
            self.family = family
            break
        if not specs:
            amd = sorted(n for n in pmus if _AMD_PMU.match(n))
            if amd:
                return (
                    f"the AMD memory PMUs here ({', '.join(amd)}) publish no named DRAM read/write events in "
                    "sysfs, and perfpulse counts only events the kernel describes"
                )
            return "no memory-controller PMU (uncore_imc*) under /sys/bus/event_source/devices"
        try:
            counters = Counters.system_wide(
                specs, syscalls=self.syscalls, pmus=pmus, sysfs_root=self.sys_root
            )
        except OSError as exc:  # CountingError (every event refused) and read failures at open
            return f"the memory-controller events could not be opened: {exc}"
        self.failed = {name: err.reason for name, err in counters.failed.items()}
        self.counters = counters
        self._prev = counters.read()
        return None

    def read(self) -> tuple[dict[tuple[str, str], float | None], float | None]:
        """Cumulative bytes per (pmu, direction) since opening (None: not counted this tick), and the
        lowest running/enabled ratio of the tick."""
        reading = self.counters.read()
        delta = reading.delta(self._prev)
        self._prev = reading
        out: dict[tuple[str, str], float | None] = {}
        lowest: float | None = None
        for event, (pmu, direction, bytes_per_count) in self.events.items():
            per_cpu = delta.get(event)
            if per_cpu is None:
                continue
            total = reading.total(per_cpu)
            if total.enabled == 0:  # no time has passed since the previous read: nothing to add
                total = total._replace(value=0.0)
            if total.value is None:  # enabled but never on the PMU: not counted, not zero
                out[(pmu, direction)] = None
                continue
            if total.ratio is not None:
                lowest = total.ratio if lowest is None else min(lowest, total.ratio)
            key = (pmu, direction)
            self._bytes[key] = self._bytes.get(key, 0.0) + total.value * bytes_per_count
            out[key] = self._bytes[key]
        return out, lowest

    def close(self) -> None:
        if self.counters is not None:
            self.counters.close()
            self.counters = None
