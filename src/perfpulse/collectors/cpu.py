"""CPU: utilisation per mode (total and per core), frequency, load, scheduler event rates, temperatures.

Utilisation comes from /proc/stat tick deltas rather than psutil: one read of one file per tick, and it
honours an injected /proc. Guest time is reported separately but is already part of user/nice (the kernel
counts it there), so the eight modes user..steal sum to 1 and guest/guest_nice are a breakdown of them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from perfpulse.collectors._hwmon import Sensors
from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.cpuinfo import parse_cpuinfo_mhz
from perfpulse.procfs.files import read, read_optional, tree_id, why
from perfpulse.procfs.loadavg import parse_loadavg
from perfpulse.procfs.stat import CPU_MODES, CpuTimes, parse_stat
from perfpulse.procfs.sysfs import parse_int
from perfpulse.rates import CounterTracker, read_boot_id

_Rows = dict[int | str, CpuTimes]
_MAX_EVENTS_PER_S = 1e9  # above this a scheduler counter rate is a glitch, not load
#: Seconds a reading of /proc/cpuinfo's clock speeds is reused where cpufreq is absent.
_CPUINFO_TTL_S = 5.0


def _g(name: str, unit: str, desc: str, path: str, labels: tuple[str, ...] = ()) -> MetricSpec:
    return MetricSpec(name, unit, "gauge", desc, path, labels)


@register
class CpuCollector(BaseCollector):
    name = "cpu"
    catalogue = (
        _g("cpu_utilization_ratio", "ratio", "Share of all CPU time spent per mode", "modes.*", ("mode",)),
        _g("cpu_busy_ratio", "ratio", "Share of all CPU time not idle and not waiting for I/O", "busy"),
        _g(
            "cpu_core_utilization_ratio",
            "ratio",
            "Share of one CPU's time spent per mode",
            "per_core.*.modes.*",
            ("cpu", "mode"),
        ),
        _g("cpu_core_busy_ratio", "ratio", "Share of one CPU's time not idle", "per_core.*.busy", ("cpu",)),
        _g(
            "cpu_core_frequency_hertz",
            "hertz",
            "CPU clock",
            "per_core.*.frequency_hz",
            ("cpu",),
        ),
        MetricSpec(
            "cpu_seconds_total",
            "seconds",
            "counter",
            "CPU time, all CPUs",
            "seconds.*",
            ("mode",),
        ),
        _g("cpu_count", "count", "Online logical CPUs", "count"),
        _g("cpu_load_average", "count", "Run-queue load average per window", "load.*", ("window",)),
        _g(
            "cpu_context_switches_per_second", "per_second", "Context switches", "context_switches_per_second"
        ),
        _g("cpu_interrupts_per_second", "per_second", "Interrupts serviced", "interrupts_per_second"),
        _g("cpu_softirqs_per_second", "per_second", "Softirqs serviced", "softirqs_per_second"),
        _g("cpu_forks_per_second", "per_second", "Processes and threads created", "forks_per_second"),
        _g("cpu_procs_running", "count", "Tasks runnable right now", "procs_running"),
        _g("cpu_procs_blocked", "count", "Tasks blocked on I/O right now", "procs_blocked"),
        _g(
            "hwmon_temperature_celsius",
            "celsius",
            "Temperature of one hardware sensor (CPU package, cores, NVMe, ...)",
            "temperatures.sensors.*.*",
            ("chip", "sensor"),
        ),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        clk_tck: int | None = None,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._clock = clock
        self._tracker = CounterTracker(clock=clock, boot_id=lambda: read_boot_id(str(self.roots.proc)))
        self._sensors = Sensors(clock)
        self._cpuinfo: dict[int, float] = {}
        self._cpuinfo_key: object = None
        self._cpuinfo_at = float("-inf")
        self._prev: _Rows = {}
        # USER_HZ, the unit of /proc/stat; a fixture tree from another machine may pass its own.
        self._user_hz = clk_tck or os.sysconf("SC_CLK_TCK")

    def unavailable_reason(self) -> str | None:
        if not os.access(self.roots.proc / "stat", os.R_OK):
            return f"{self.roots.proc / 'stat'} cannot be read: is /proc mounted?"
        return None

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self._collect

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self._collect)

    def _collect(self) -> dict[str, Any]:
        proc = self.roots.proc
        try:
            st = parse_stat(read(proc / "stat"))
        except (OSError, ParseError) as exc:
            return unavailable(f"cannot read {proc / 'stat'}: {why(exc)}", "check that /proc is mounted")
        tr = self._tracker
        out: dict[str, Any] = {"available": True, "count": len(st.per_cpu) or None}
        freqs = self._frequencies(sorted(st.per_cpu))
        prev, self._prev = self._prev, {}
        tr.begin()
        try:
            modes = self._ratios("all", st.total, prev)
            out["modes"] = modes
            out["busy"] = _busy(modes)
            per_core: dict[str, Any] = {}
            for cpu, times in st.per_cpu.items():
                m = self._ratios(cpu, times, prev)
                per_core[str(cpu)] = {"modes": m, "busy": _busy(m), "frequency_hz": freqs.get(cpu)}
            out["per_core"] = per_core
            for key, value in (
                ("context_switches", st.context_switches),
                ("interrupts", st.interrupts),
                ("softirqs", st.softirqs),
                ("forks", st.forks),
            ):
                rate = None if value is None else tr.per_second(key, value, limit=_MAX_EVENTS_PER_S)
                out[f"{key}_per_second"] = rate
        finally:
            tr.end()
        out["seconds"] = {m: st.total.ticks[i] / self._user_hz for i, m in enumerate(CPU_MODES)}
        out["procs_running"] = st.procs_running
        out["procs_blocked"] = st.procs_blocked
        try:
            la = parse_loadavg(read(proc / "loadavg"))
            out["load"] = {"1m": la.load1, "5m": la.load5, "15m": la.load15}
        except (OSError, ParseError):
            out["load"] = None
        out["temperatures"] = self._sensors.read(self.roots.sys)
        return out

    def _ratios(
        self, cpu: int | str, times: CpuTimes, prev: dict[int | str, CpuTimes]
    ) -> dict[str, float | None]:
        """Share of each mode in the interval. The tracker sees each CPU's total once (reset, boot change,
        an offlined CPU coming back: no ratio); the split uses the previous row, one tracker call per CPU
        instead of ten, which is most of this collector's cost on a 64-CPU machine."""
        self._prev[cpu] = times
        r = self._tracker.rate(("cpu", cpu), times.total)
        before = prev.get(cpu)
        if r is None or before is None or r.delta <= 0:
            return dict.fromkeys(CPU_MODES)
        d = [a - b for a, b in zip(times.ticks, before.ticks, strict=True)]
        if min(d) < 0:  # one mode went backwards while the total did not: still a reset
            return dict.fromkeys(CPU_MODES)
        total = r.delta
        return {m: min(1.0, d[i] / total) for i, m in enumerate(CPU_MODES)}

    def _frequencies(self, cpus: list[int]) -> dict[int, float]:
        """Hz per CPU: cpufreq's scaling_cur_freq (kHz) where the driver exposes it, else cpuinfo's MHz."""
        base = f"{self.roots.sys}/devices/system/cpu"
        out: dict[int, float] = {}
        for cpu in cpus:
            try:
                raw = read_optional(f"{base}/cpu{cpu}/cpufreq/scaling_cur_freq")
                if raw is None:
                    break
                out[cpu] = parse_int(raw) * 1000.0
            except (OSError, ParseError):
                continue
        if out or not cpus:
            return out
        # Without cpufreq, /proc/cpuinfo's MHz: a file that formats a page per CPU (and on x86 samples each
        # CPU's clock to do it), so it is read every _CPUINFO_TTL_S rather than every tick.
        now = self._clock()
        key = tree_id(self.roots.proc)
        if key != self._cpuinfo_key or now - self._cpuinfo_at >= _CPUINFO_TTL_S:
            try:
                text = read(self.roots.proc / "cpuinfo")
                self._cpuinfo = {c: mhz * 1e6 for c, mhz in parse_cpuinfo_mhz(text).items()}
            except (OSError, ParseError):
                self._cpuinfo = {}
            self._cpuinfo_key, self._cpuinfo_at = key, now
        return self._cpuinfo


def _busy(modes: dict[str, float | None]) -> float | None:
    idle, iowait = modes.get("idle"), modes.get("iowait")
    if idle is None or iowait is None:
        return None
    return max(0.0, 1.0 - idle - iowait)
