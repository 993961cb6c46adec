"""RAPL energy counters, read two ways: the ``power`` PMU through perf, and /sys/class/powercap.

Both give the energy counted since the source was opened, in joules, per (domain, package). Domain labels
are perf's (pkg, cores, ram, psys, gpu); powercap zone names map onto them. psys is platform-wide and is
labelled package "platform" in both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfpulse.perf.counting import Counters
from perfpulse.perf.events import parse_event
from perfpulse.perf.pmu import discover_pmus

#: perf event name -> domain label (the perf names, shared with the powercap zones below).
PERF_DOMAINS = {"energy-pkg": "pkg", "energy-cores": "cores", "energy-ram": "ram", "energy-psys": "psys"}
PERF_DOMAINS["energy-gpu"] = "gpu"
#: powercap zone ``name`` -> domain label (drivers/powercap/intel_rapl_common.c ``rapl_domain_names``).
POWERCAP_DOMAINS = {"core": "cores", "uncore": "gpu", "dram": "ram", "psys": "psys"}
#: No RAPL domain draws more than this; a larger rate is a glitch (reset, swapped fixture), never shown.
MAX_WATTS = 20_000.0
_ZONE_RE = re.compile(r"^intel-rapl:(\d+)(?::(\d+))?$")
Key = tuple[str, str]  # (domain, package)


class PowercapSource:
    """RAPL through /sys/class/powercap: cumulative joules per (domain, package), wraps unfolded."""

    name = "powercap"

    def __init__(self, sys_root: Callable[[], Path]) -> None:
        self._sys_root = sys_root  # read at every tick: a test may move the collector to a later tree
        self.zones: dict[Key, tuple[str, int | None]] = {}
        self._last: dict[Key, tuple[int, float]] = {}  # key -> (energy_uj, time read)
        self._total_uj: dict[Key, int] = {}

    @property
    def base(self) -> Path:
        return self._sys_root() / "class" / "powercap"

    def discover(self) -> str | None:
        """None when at least one zone can be read, else why not."""
        try:
            names = sorted(p.name for p in self.base.iterdir())
        except OSError:
            return f"no {self.base} (the intel_rapl powercap driver is not loaded)"
        tops: dict[str, str] = {}
        found: dict[Key, tuple[str, int | None]] = {}
        for name in names:
            m = _ZONE_RE.match(name)
            if m is None:
                continue  # "intel-rapl" (the control type), "intel-rapl-mmio:0" (a duplicate of package 0)
            zone = self.base / name
            try:
                label = (zone / "name").read_text().strip()
            except OSError:
                continue
            max_range = read_int(zone / "max_energy_range_uj")
            if m.group(2) is None:
                pkg = label.removeprefix("package-") if label.startswith("package-") else "platform"
                tops[m.group(1)] = pkg
                domain = "pkg" if label.startswith("package-") else POWERCAP_DOMAINS.get(label, label)
            else:
                pkg = tops.get(m.group(1), m.group(1))
                domain = POWERCAP_DOMAINS.get(label, label)
            found[(domain, pkg)] = (name, max_range)
        if not found:
            return f"no intel-rapl zones under {self.base}"
        readable = [k for k, (z, _) in found.items() if os.access(self.base / z / "energy_uj", os.R_OK)]
        if not readable:
            return f"{self.base}/intel-rapl:*/energy_uj is readable by root only (Linux 5.10+, CVE-2020-8694)"
        self.zones = {k: found[k] for k in readable}
        return None

    def read(self, now: float) -> dict[Key, float | None]:
        out: dict[Key, float | None] = {}
        base = self.base
        for key, (zone, max_range) in self.zones.items():
            value = read_int(base / zone / "energy_uj")
            if value is None:
                out[key] = None
                continue
            prev = self._last.get(key)
            self._last[key] = (value, now)
            total = self._total_uj.get(key, 0)
            if prev is not None:
                delta = value - prev[0]
                if delta < 0 and max_range:
                    delta += max_range  # the counter wrapped once (at >= 1 s ticks it cannot wrap twice)
                seconds = now - prev[1]
                if delta > 0 and (seconds <= 0 or delta / 1e6 / seconds > MAX_WATTS):
                    delta = 0  # a reset, not a wrap (firmware, resume): that interval adds nothing
                total += max(delta, 0)
            self._total_uj[key] = total
            out[key] = total / 1e6
        return out

    def close(self) -> None:
        return None


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_bytes())
    except (OSError, ValueError):
        return None


class PerfSource:
    """RAPL through the ``power`` PMU: one counting event per domain on each package's cpumask CPU."""

    name = "perf"

    def __init__(self, sys_root: Path, syscalls: Any) -> None:
        self.sys_root = sys_root
        self.syscalls = syscalls
        self.counters: Any = None
        self.domains: dict[str, str] = {}  # event name -> domain
        self.scales: dict[str, float] = {}
        self.packages: dict[int, str] = {}  # cpu -> package id
        self.failed: dict[str, str] = {}

    def discover(self) -> str | None:
        pmus = discover_pmus(self.sys_root)
        power = pmus.get("power")
        if power is None:
            return "no `power` PMU (RAPL) under /sys/bus/event_source/devices"
        specs = []
        for event, domain in PERF_DOMAINS.items():
            if event in power.events:
                try:
                    spec = parse_event(f"power/{event}/", pmus)
                except ValueError as exc:  # sysfs terms the PMU's format files do not define
                    self.failed[f"power/{event}/"] = str(exc)
                    continue
                specs.append(spec)
                self.domains[spec.name] = domain
                self.scales[spec.name] = spec.scale
        if not specs:
            return "the `power` PMU lists no energy-* events"
        try:
            counters = Counters.system_wide(
                specs, syscalls=self.syscalls, pmus=pmus, sysfs_root=self.sys_root
            )
        except OSError as exc:  # CountingError (every event refused) and read failures at open
            return f"the power PMU's events could not be opened: {exc}"
        self.failed.update({name: err.reason for name, err in counters.failed.items()})
        self.counters = counters
        for cpu in power.cpumask or (0,):
            pkg = read_int(self.sys_root / f"devices/system/cpu/cpu{cpu}/topology/physical_package_id")
            self.packages[cpu] = str(pkg if pkg is not None else len(self.packages))
        return None

    def read(self, now: float) -> dict[Key, float | None]:
        out: dict[Key, float | None] = {}
        reading = self.counters.read()
        for event, domain in self.domains.items():
            per_cpu = reading.get(event)
            if per_cpu is None:
                continue
            for cpu, raw in per_cpu.items():
                pkg = "platform" if domain == "psys" else self.packages.get(cpu, str(cpu))
                if (domain, pkg) in out:
                    continue  # psys is platform-wide: counted once, not once per package CPU
                # RAPL is never multiplexed: enabled without running means the event did not count at
                # all (right after opening both are 0, and the count is a true 0).
                counted = raw.running > 0 or raw.enabled == 0
                out[(domain, pkg)] = raw.value * self.scales[event] if counted else None
        return out

    def close(self) -> None:
        if self.counters is not None:
            self.counters.close()
            self.counters = None
