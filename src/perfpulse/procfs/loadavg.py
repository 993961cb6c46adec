"""/proc/loadavg: "0.56 0.20 0.07 1/100 8734" (proc.rst, "1.2 Kernel data").

Fields: 1, 5 and 15 minute load averages, runnable/total scheduling entities, last PID allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpulse.procfs import ParseError, as_text, to_float, to_int


@dataclass(frozen=True, slots=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    runnable: int
    entities: int
    last_pid: int


def parse_loadavg(data: bytes | str) -> LoadAvg:
    parts = as_text(data, "/proc/loadavg").split()
    if len(parts) != 5:
        raise ParseError(f"/proc/loadavg: expected 5 fields, got {len(parts)}")
    run, sep, total = parts[3].partition("/")
    if not sep:
        raise ParseError(f"/proc/loadavg: {parts[3][:30]!r} is not runnable/total")
    loads = [to_float(p, "/proc/loadavg") for p in parts[:3]]
    if any(v < 0 for v in loads):
        raise ParseError("/proc/loadavg: negative load average")
    return LoadAvg(
        loads[0],
        loads[1],
        loads[2],
        to_int(run, "/proc/loadavg runnable"),
        to_int(total, "/proc/loadavg total"),
        to_int(parts[4], "/proc/loadavg last pid"),
    )
