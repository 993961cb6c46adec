"""Parsers for the per-process files under /proc/<pid>/: stat, status, io and cmdline.

The process collector reads /proc/<pid>/stat for every process on every tick, so ``parse_stat`` is the hot
path: one ``bytes.split`` after the command name, no regular expressions. Field numbers below follow
proc(5) ("/proc/pid/stat", 1-based); they have been stable since Linux 2.6.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpulse.procfs import ParseError

#: Single-letter process states (proc(5), fs/proc/array.c ``task_state_array``) and their names.
STATE_NAMES: dict[str, str] = {
    "R": "running",
    "S": "sleeping",
    "D": "disk_sleep",
    "T": "stopped",
    "t": "tracing_stop",
    "X": "dead",
    "x": "dead",
    "Z": "zombie",
    "P": "parked",
    "I": "idle",
    "W": "waking",
    "K": "wakekill",
}


@dataclass(frozen=True, slots=True)
class PidStat:
    """The fields of /proc/<pid>/stat the process collector uses.

    ``utime``/``stime``/``starttime`` are in clock ticks (``SC_CLK_TCK``), ``rss`` in pages; the caller owns
    the conversions because the tick length and page size belong to the machine the file came from.
    """

    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    num_threads: int
    starttime: int
    vsize: int
    rss: int


def parse_stat(data: bytes) -> PidStat:
    """Parse /proc/<pid>/stat.

    The command name sits in parentheses and may itself contain spaces and ')' (a process can name itself
    anything with prctl(PR_SET_NAME)), so the name ends at the *last* ')' of the line.
    """
    open_paren = data.find(b"(")
    close_paren = data.rfind(b")")
    if open_paren < 1 or close_paren < open_paren:
        raise ParseError("/proc/<pid>/stat: no '(comm)' field")
    rest = data[close_paren + 2 :].split()
    # rest[0] is field 3 (state); field N is rest[N - 3]. Field 24 (rss) is the last one used.
    if len(rest) < 22:
        raise ParseError(f"/proc/<pid>/stat: {len(rest) + 2} fields, expected at least 24")
    try:
        pid = int(data[:open_paren])
        state = rest[0].decode("ascii")
        values = (
            int(rest[1]),  # 4 ppid
            int(rest[11]),  # 14 utime
            int(rest[12]),  # 15 stime
            int(rest[17]),  # 20 num_threads
            int(rest[19]),  # 22 starttime
            int(rest[20]),  # 23 vsize
            int(rest[21]),  # 24 rss (pages)
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"/proc/<pid>/stat: bad field: {exc}") from None
    if len(state) != 1 or pid < 0 or min(values[1:]) < 0:
        raise ParseError("/proc/<pid>/stat: state is not one letter or a counter is negative")
    comm = data[open_paren + 1 : close_paren].decode("utf-8", "replace")
    ppid, utime, stime, threads, start, vsize, rss = values
    return PidStat(pid, comm, state, ppid, utime, stime, threads, start, vsize, rss)


@dataclass(frozen=True, slots=True)
class PidIO:
    """/proc/<pid>/io (needs CONFIG_TASK_IO_ACCOUNTING and ptrace access: root, or the same user).

    ``read_bytes``/``write_bytes`` are what reached the storage layer; ``rchar``/``wchar`` count every
    read()/write() byte, page-cache hits and pipes included.
    """

    rchar: int
    wchar: int
    read_bytes: int
    write_bytes: int


_IO_KEYS = (b"rchar", b"wchar", b"read_bytes", b"write_bytes")


def parse_io(data: bytes) -> PidIO:
    """Parse /proc/<pid>/io ("key: value" lines)."""
    found: dict[bytes, int] = {}
    for line in data.splitlines():
        key, sep, value = line.partition(b":")
        if not sep:
            if line.strip():
                raise ParseError(f"/proc/<pid>/io: line without ':': {line[:40]!r}")
            continue
        key = key.strip()
        if key in _IO_KEYS:
            try:
                n = int(value)
            except ValueError:
                raise ParseError(f"/proc/<pid>/io: {key.decode('ascii')} is not a number") from None
            if n < 0:
                raise ParseError(f"/proc/<pid>/io: {key.decode('ascii')} is negative")
            found[key] = n
    missing = [k.decode("ascii") for k in _IO_KEYS if k not in found]
    if missing:
        raise ParseError(f"/proc/<pid>/io: missing {', '.join(missing)}")
    return PidIO(*(found[k] for k in _IO_KEYS))


def parse_status_uid(data: bytes) -> int:
    """The effective uid from /proc/<pid>/status ("Uid: real effective saved fs"), as top and ps show."""
    for line in data.splitlines():
        if line.startswith(b"Uid:"):
            parts = line[4:].split()
            if len(parts) < 2:
                raise ParseError("/proc/<pid>/status: Uid line has fewer than 2 ids")
            try:
                uid = int(parts[1])
            except ValueError:
                raise ParseError("/proc/<pid>/status: Uid is not a number") from None
            if uid < 0:
                raise ParseError("/proc/<pid>/status: negative uid")
            return uid
    raise ParseError("/proc/<pid>/status: no Uid line")


def parse_cmdline(data: bytes) -> str | None:
    """/proc/<pid>/cmdline (NUL-separated argv) as one line; None for kernel threads (empty file)."""
    args = data.rstrip(b"\0").split(b"\0")
    text = " ".join(a.decode("utf-8", "replace") for a in args)
    return text or None
