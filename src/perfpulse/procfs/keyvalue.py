"""Key/value files: /proc/meminfo ("Key:   123 kB") and /proc/vmstat ("key 123").

meminfo: Documentation/filesystems/proc.rst, "meminfo". Values carrying a ``kB`` suffix are KiB and are
returned in bytes; the unit-less ones (``HugePages_Total`` and friends) are counts and stay as they are.
vmstat: one ``name value`` pair per line, names differ between kernel versions, so callers use ``.get``.
"""

from __future__ import annotations

from perfpulse.procfs import ParseError, as_text, to_int, to_ints


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
    tokens = text.split()
    names, values = tokens[::2], tokens[1::2]
    # Fast path (about 200 lines, read every tick): one split, then a check that each line had two fields.
    lines = text.count("\n") + (not text.endswith("\n"))  # the kernel writes no blank lines
    if not tokens or len(names) != len(values) or len(names) != lines:
        raise ParseError("/proc/vmstat: expected one 'name value' pair per line")
    nums = to_ints(values, "/proc/vmstat")
    return dict(zip(names, nums, strict=True))
