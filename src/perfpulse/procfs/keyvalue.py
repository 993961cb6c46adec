"""Key/value files: /proc/meminfo ("Key:   123 kB") and /proc/vmstat ("key 123").

meminfo: Documentation/filesystems/proc.rst, "meminfo". Values carrying a ``kB`` suffix are KiB and are
returned in bytes; the unit-less ones (``HugePages_Total`` and friends) are counts and stay as they are.
vmstat: one ``name value`` pair per line, names differ between kernel versions, so callers use ``.get``.
"""

from __future__ import annotations

from perfpulse.procfs import ParseError, as_text, to_int


def parse_meminfo(data: bytes | str) -> dict[str, int]:
    """Every field of /proc/meminfo; sizes in bytes, counts unchanged."""
    text = as_text(data, "/proc/meminfo")
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not key or not parts or len(parts) > 2 or " " in key:
            raise ParseError(f"/proc/meminfo: unexpected line {line[:60]!r}")
        value = to_int(parts[0], f"/proc/meminfo {key}")
        if len(parts) == 2:
            if parts[1] != "kB":
                raise ParseError(f"/proc/meminfo {key}: unknown unit {parts[1][:20]!r}")
            value *= 1024
        out[key] = value
    if not out:
        raise ParseError("/proc/meminfo: empty")
    return out


def parse_vmstat(data: bytes | str) -> dict[str, int]:
    text = as_text(data, "/proc/vmstat")
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ParseError(f"/proc/vmstat: unexpected line {line[:60]!r}")
        out[parts[0]] = to_int(parts[1], f"/proc/vmstat {parts[0]}")
    if not out:
        raise ParseError("/proc/vmstat: empty")
    return out
