"""/proc/cpuinfo: only what sysfs may lack, the "cpu MHz" line per logical CPU (x86; absent on most ARM)."""

from __future__ import annotations

from perfpulse.procfs import ParseError, as_text, to_float, to_int


def parse_cpuinfo_mhz(data: bytes | str) -> dict[int, float]:
    """``{cpu number: MHz}`` for the CPUs whose block has a ``cpu MHz`` line."""
    text = as_text(data, "/proc/cpuinfo")
    out: dict[int, float] = {}
    cpu: int | None = None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "processor":
            cpu = to_int(value, "/proc/cpuinfo processor")
            if cpu < 0:
                raise ParseError("/proc/cpuinfo: negative processor number")
        elif key == "cpu MHz":
            if cpu is None:
                raise ParseError("/proc/cpuinfo: 'cpu MHz' before any 'processor' line")
            mhz = to_float(value, "/proc/cpuinfo cpu MHz")
            if mhz < 0:
                raise ParseError("/proc/cpuinfo: negative frequency")
            out[cpu] = mhz
    return out
