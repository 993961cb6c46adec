"""Energy from RAPL: joules and watts per domain (package, cores, DRAM, platform, integrated GPU).

Two sources, in order of preference:

1. the ``power`` PMU through perf_event_open (``power/energy-pkg/`` and friends, Linux 3.14+), scaled by the
   event's sysfs ``.scale`` (2^-32 J on Intel). The kernel widens the 32-bit MSR to 64 bits, so no wrap;
2. ``/sys/class/powercap/intel-rapl:<pkg>[:<sub>]/energy_uj`` (the intel_rapl driver, also used on AMD),
   which wraps at ``max_energy_range_uj``; a wrap is folded into the running total. It is root-only since
   Linux 5.10 (CVE-2020-8694).

``joules_total`` is the energy counted since the collector started. A domain whose counter does not move
is not reported as 0 W: on virtual machines RAPL is often emulated, and an event such as energy-psys opens
fine yet never counts. After ``frozen_after`` seconds without a change the domain is marked ``frozen`` with
a reason, and its watts stay null.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from perfpulse.collectors._rapl import MAX_WATTS, Key, PerfSource, PowercapSource
from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.rates import CounterTracker

#: How long an unavailable source is believed before sysfs is searched again.
RETRY_SECONDS = 60.0
NO_RAPL_HINT = (
    "RAPL needs an Intel (Sandy Bridge or later) or AMD (Zen or later) CPU with the intel_rapl_msr driver "
    "loaded (modprobe intel_rapl_msr); most virtual machines do not expose it"
)


@register
class EnergyCollector(BaseCollector):
    name = "energy"
    catalogue = (
        MetricSpec(
            "energy_consumed_joules_total",
            "joules",
            "counter",
            "RAPL energy per domain since perfpulse started (pkg, cores, ram, psys, gpu)",
            path="domains.*.joules_total",
            labels=("domain",),
        ),
        MetricSpec(
            "energy_power_watts",
            "watts",
            "gauge",
            "RAPL power per domain; absent while the counter does not advance",
            path="domains.*.watts",
            labels=("domain",),
        ),
        MetricSpec(
            "energy_package_power_watts",
            "watts",
            "gauge",
            "RAPL power per package and domain",
            path="packages.*.*.watts",
            labels=("package", "domain"),
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
        frozen_after: float = 5.0,
        use_perf: bool = True,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._syscalls = syscalls
        self._clock = clock
        self.frozen_after = frozen_after
        self._use_perf = use_perf
        self._source: PerfSource | PowercapSource | None = None
        self._why_not: list[str] = []
        self._tracker = CounterTracker(clock=clock)
        self._changed: dict[Key, tuple[float, float]] = {}  # key -> (value, time it last changed)
        self._retry_at = float("-inf")

    def unavailable_reason(self) -> str | None:
        has_pmu = (self.roots.sys / "bus/event_source/devices/power").is_dir()
        has_zones = any(self.roots.sys.glob("class/powercap/intel-rapl:*"))
        if has_pmu or has_zones:
            return None
        return "no RAPL energy counters here: no `power` PMU and no /sys/class/powercap/intel-rapl zones"

    def hint(self) -> str | None:
        return NO_RAPL_HINT

    def _open(self) -> PerfSource | PowercapSource | None:
        self._why_not = []
        candidates: list[PerfSource | PowercapSource] = []
        if self._use_perf:
            candidates.append(PerfSource(self.roots.sys, self._syscalls))
        candidates.append(PowercapSource(lambda: self.roots.sys))
        for source in candidates:
            reason = source.discover()
            if reason is None:
                return source
            source.close()
            self._why_not.append(f"{source.name}: {reason}")
        return None

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self.collect_sync

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self.collect_sync)

    def collect_sync(self) -> dict[str, Any]:
        now = self._clock()
        if self._source is None:
            # Looking again costs a sysfs walk; a driver loaded later is found within RETRY_SECONDS.
            if now < self._retry_at:
                return unavailable("; ".join(self._why_not), NO_RAPL_HINT)
            self._source = self._open()
            if self._source is None:
                self._retry_at = now + RETRY_SECONDS
                return unavailable("; ".join(self._why_not), NO_RAPL_HINT)
        with self._tracker.tick(now):
            values = self._source.read(now)
            per_key = {key: self._account(key, value, now) for key, value in values.items()}
        domains: dict[str, dict[str, Any]] = {}
        packages: dict[str, dict[str, Any]] = {}
        for (domain, pkg), entry in sorted(per_key.items()):
            packages.setdefault(pkg, {})[domain] = entry
            d = domains.setdefault(domain, {"joules_total": 0.0, "watts": 0.0, "frozen": True})
            d["joules_total"] = _add(d["joules_total"], entry["joules_total"])
            d["watts"] = _add(d["watts"], entry["watts"])
            d["frozen"] = d["frozen"] and entry["frozen"]
            if entry["frozen"]:
                d["reason"] = entry["reason"]
        for d in domains.values():
            if not d["frozen"]:
                d.pop("reason", None)
        out: dict[str, Any] = {"source": self._source.name, "domains": domains, "packages": packages}
        if self._why_not:
            out["fallback_reason"] = "; ".join(self._why_not)
        if isinstance(self._source, PerfSource) and self._source.failed:
            out["failed_events"] = self._source.failed
        return out

    def _account(self, key: Key, value: float | None, now: float) -> dict[str, Any]:
        if value is None:
            return {"joules_total": None, "watts": None, "frozen": False}
        watts = self._tracker.per_second(key, value, limit=MAX_WATTS)
        last = self._changed.get(key)
        if last is None or value != last[0]:
            self._changed[key] = (value, now)
            stalled = 0.0
        else:
            stalled = now - last[1]
        entry: dict[str, Any] = {"joules_total": value, "watts": watts, "frozen": False}
        if last is not None and value == last[0]:
            entry["watts"] = None  # not advancing: unknown, never 0 W
            if stalled >= self.frozen_after:
                entry["frozen"] = True
                entry["reason"] = (
                    f"counter has not advanced in {stalled:.0f} s: RAPL virtualised or unsupported domain"
                )
        return entry

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None
        self._retry_at = float("-inf")


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b
