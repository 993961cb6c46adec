"""/proc/self/mounts (the fstab(5) layout): ``source mountpoint fstype options dump pass``.

Spaces, tabs, newlines and backslashes inside fields are written as 3-digit octal escapes (``\\040``), see
fs/proc_namespace.c (mangle). Paths may be any bytes; they are decoded as UTF-8 with surrogateescape so
that ``os.fsencode`` gives back the exact bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from perfpulse.procfs import ParseError

_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    source: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]


def _unescape(field: str) -> str:
    if "\\" not in field:
        return field
    try:
        raw = field.encode("utf-8", "surrogateescape")
    except UnicodeError:
        raise ParseError(f"mounts: {field[:40]!r} is not a path") from None
    raw = _ESCAPE.sub(lambda m: bytes((int(m.group(1), 8) & 0xFF,)), raw)
    if b"\x00" in raw:
        raise ParseError("mounts: NUL byte in a path")
    return raw.decode("utf-8", "surrogateescape")


def parse_mounts(data: bytes | str) -> list[Mount]:
    if isinstance(data, bytes):
        text = data.decode("utf-8", "surrogateescape")
    elif isinstance(data, str):
        text = data
    else:
        raise ParseError(f"mounts: expected bytes or str, got {type(data).__name__}")
    out: list[Mount] = []
    for line in text.split("\n"):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4 or "\x00" in line:
            raise ParseError(f"mounts: unexpected line {line[:60]!r}")
        mp = _unescape(parts[1])
        if not mp.startswith("/"):
            raise ParseError(f"mounts: mount point {mp[:40]!r} is not absolute")
        out.append(Mount(_unescape(parts[0]), mp, _unescape(parts[2]), tuple(parts[3].split(","))))
    return out
