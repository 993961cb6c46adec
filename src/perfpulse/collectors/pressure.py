"""Pressure Stall Information: how much time tasks lose waiting for CPU, memory, I/O and IRQ time.

``some`` is the share of time at least one task stalled, ``full`` the share all non-idle tasks stalled at
once. The kernel's own running averages (avg10/60/300, percent) are passed through; the cumulative
``total`` (microseconds) becomes a stall rate in seconds per second (0..1 per resource), which unlike the
averages reflects exactly the last interval. irq exists since 6.1 with CONFIG_IRQ_TIME_ACCOUNTING.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.files import read
from perfpulse.procfs.pressure import parse_pressure
from perfpulse.rates import CounterTracker, read_boot_id

RESOURCES = ("cpu", "memory", "io", "irq")
REASON = "kernel without CONFIG_PSI or psi=0 on the command line: /proc/pressure is missing or disabled"
HINT = "boot with psi=1 (kernels built with CONFIG_PSI_DEFAULT_DISABLED need it) on Linux 4.20 or newer"
_LABELS = ("resource", "scope")


def _g(name: str, unit: str, desc: str, key: str) -> MetricSpec:
    return MetricSpec(name, unit, "gauge", desc, f"resources.*.*.{key}", _LABELS)


@register
class PressureCollector(BaseCollector):
    name = "pressure"
    catalogue = (
        _g("pressure_avg10_percent", "percent", "Share of the last 10 s stalled (kernel average)", "avg10"),
        _g("pressure_avg60_percent", "percent", "Share of the last 60 s stalled (kernel average)", "avg60"),
        _g(
            "pressure_avg300_percent", "percent", "Share of the last 300 s stalled (kernel average)", "avg300"
        ),
        _g("pressure_stall_seconds_per_second", "seconds_per_second", "Stall time per second", "stall_rate"),
        MetricSpec(
            "pressure_stall_seconds_total",
            "seconds",
            "counter",
            "Cumulative stall time",
            "resources.*.*.total_seconds",
            _LABELS,
        ),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._tracker = CounterTracker(clock=clock, boot_id=lambda: read_boot_id(str(self.roots.proc)))

    def unavailable_reason(self) -> str | None:
        try:
            read(self.roots.proc / "pressure/cpu")
        except OSError:
            return REASON
        return None

    def hint(self) -> str | None:
        return HINT

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self._collect

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self._collect)

    def _collect(self) -> dict[str, Any]:
        resources: dict[str, Any] = {}
        errors: dict[str, str] = {}
        with self._tracker.tick():
            for res in RESOURCES:
                path = self.roots.proc / "pressure" / res
                try:
                    lines = parse_pressure(read(path))
                except OSError as exc:
                    # ENOENT: older kernel (irq before 6.1); EOPNOTSUPP: psi=0, or irq accounting off.
                    if exc.errno not in (errno.ENOENT, errno.EOPNOTSUPP):
                        errors[res] = f"{path}: {exc.strerror}"
                    continue
                except ParseError as exc:
                    errors[res] = str(exc)
                    continue
                out: dict[str, Any] = {}
                for scope, line in lines.items():
                    # At most 1 s/s; read jitter may overshoot a little (clamped); a 2x jump is a glitch.
                    rate = self._tracker.per_second((res, scope), line.total_us, limit=2e6)
                    out[scope] = {
                        "avg10": line.avg10,
                        "avg60": line.avg60,
                        "avg300": line.avg300,
                        "total_seconds": line.total_us / 1e6,
                        "stall_rate": None if rate is None else min(rate / 1e6, 1.0),
                    }
                resources[res] = out
        if not resources:
            return unavailable(REASON, HINT, errors=errors) if errors else unavailable(REASON, HINT)
        result: dict[str, Any] = {"available": True, "resources": resources}
        if errors:
            result["errors"] = errors
        return result
