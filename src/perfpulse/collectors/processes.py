"""Processes: counts by state, and the top N by CPU and by memory.

Cost is what matters here: a host with thousands of processes is read every second. One tick is one
``os.scandir`` of /proc plus one ``read`` of /proc/<pid>/stat per process (name, state, CPU time, threads,
start time and RSS are all on that line); psutil's per-process objects cost several times more for the same
fields (bench/processes_scan.py). The files that only the top N need (status for the user, io, cmdline)
are read for those few processes only, and the user and command line of a process are kept while it stays
in a top list: re-read when its name changes (an exec) and at least every ``IDENTITY_REFRESH`` seconds (a
setuid, or a daemon that rewrites its argv), which halves the reads of a tick.

A process that exits between the directory listing and the read is skipped without a word. Rates are keyed
by (pid, start time), so a reused PID starts from nothing instead of inheriting its predecessor's counters.

On the live /proc, each process's stat file stays open from one tick to the next and is read again with
``pread`` at offset 0 (procfs builds the line afresh on every read from offset 0): that saves an open and a
close per process per tick (the scan cost 0.83x as much with about 70 processes, 0.71x with 2,067). The
descriptor pins the process it was opened for: once that process is gone, the read fails with ESRCH, so a PID
reused by a new process is reopened, never confused with its predecessor. At most :func:`kept_budget`
descriptors are kept (an eighth of the soft RLIMIT_NOFILE, up to 4,096); the processes past that are read with
open/read/close as before. Fixture trees (any root other than /proc) are always read with open/read/close,
since tests swap them between ticks.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import pwd
import resource
import time
from collections.abc import Callable
from typing import Any

from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.pidstat import (
    STATE_NAMES,
    PidStat,
    parse_cmdline,
    parse_io,
    parse_stat,
    parse_status_uid,
)
from perfpulse.rates import CounterTracker, read_boot_id

#: States always present in ``states`` (0 when no process is in them), so charts have stable series.
_BASE_STATES = ("running", "sleeping", "disk_sleep", "stopped", "zombie", "idle")


class _Unread:
    """A command line that could not be read (gone, hidden), unlike a kernel thread's empty one."""


_UNREAD = _Unread()
_Identity = tuple[str, float, str | None, str | _Unread | None]

#: Seconds the user and command line of a process in a top list are reused before being read again.
IDENTITY_REFRESH = 10.0

_NO_PIDS = "{proc} lists no /proc/<pid> directories: not a procfs, or one without processes"

#: Most stat descriptors kept open however high RLIMIT_NOFILE is.
KEPT_MAX = 4096


def kept_budget() -> int:
    """How many /proc/<pid>/stat descriptors to keep open: an eighth of the soft RLIMIT_NOFILE (128 under
    the usual 1,024), leaving the rest to sockets, the history store and perf counters."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 0
    if soft == resource.RLIM_INFINITY:
        return KEPT_MAX
    return max(0, min(KEPT_MAX, soft // 8))


def _read(path: str, size: int = 4096) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


@register
class ProcessesCollector(BaseCollector):
    name = "processes"
    sensitive = frozenset({"cmdlines"})
    # The top processes' command lines: most of this collector's bytes, and the same while the top stays.
    sticky = frozenset({"cmdlines"})
    catalogue = (
        MetricSpec("processes_count", "count", "gauge", "Processes (thread groups) present", path="total"),
        MetricSpec("processes_threads_count", "count", "gauge", "Threads of all processes", path="threads"),
        MetricSpec(
            "processes_state_count",
            "count",
            "gauge",
            "Processes by the state of their main thread (R running, S sleeping, D disk_sleep, Z zombie...)",
            path="states.*",
            labels=("state",),
        ),
    )

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        top_n: int = 10,
        clock: Callable[[], float] = time.monotonic,
        clk_tck: int | None = None,
        page_size: int | None = None,
        user_name: Callable[[int], str] | None = None,
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        if top_n < 0:
            raise ValueError(f"top_n must be >= 0, got {top_n}")
        self.top_n = top_n
        self._clk_tck = clk_tck or os.sysconf("SC_CLK_TCK")
        self._page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self._user_name = user_name or _passwd_name
        self._users: dict[int, str] = {}

        def boot() -> object:
            return read_boot_id(str(self.roots.proc))

        self._cpu = CounterTracker(clock=clock, boot_id=boot)
        self._io = CounterTracker(clock=clock, boot_id=boot)
        self._io_primed = False
        self._clock = clock
        #: pid directory -> (its stat line, parsed) from the last tick: most processes did not run since.
        self._parsed: dict[str, tuple[bytes, PidStat]] = {}
        #: (pid, start time) -> (name, read at, user, cmdline) for the processes of the last top lists;
        #: the cmdline is _UNREAD when the file could not be read (a kernel thread's reads as None).
        self._identity: dict[tuple[int, int], _Identity] = {}
        self._identity_next: dict[tuple[int, int], _Identity] = {}
        #: pid directory -> its stat file kept open (live /proc only), and how many may be.
        self._kept: dict[str, int] = {}
        self._kept_budget = kept_budget()

    @property
    def _proc(self) -> str:
        return str(self.roots.proc)

    def unavailable_reason(self) -> str | None:
        try:
            with os.scandir(self._proc) as it:
                if any(e.name.isascii() and e.name.isdigit() for e in it):
                    return None
        except OSError:
            return f"{self._proc} does not exist (procfs not mounted?)"
        return _NO_PIDS.format(proc=self._proc)

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self.collect_sync

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self.collect_sync)

    def collect_sync(self) -> dict[str, Any]:
        """One tick, blocking (the async ``collect`` runs this in a worker thread)."""
        proc = self._proc
        try:
            # Paths relative to one directory descriptor: the kernel resolves "/proc" once, not per file.
            dir_fd = os.open(proc, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            return unavailable(f"cannot list {proc}: {exc.strerror}")
        try:
            return self._scan(proc, dir_fd, os.path.realpath(proc) == "/proc")
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        kept, self._kept = self._kept, {}
        for fd in kept.values():
            with contextlib.suppress(OSError):
                os.close(fd)

    def kept_files(self) -> int:
        """stat descriptors kept open between ticks (for tests and self-monitoring)."""
        return len(self._kept)

    def _read_kept(self, name: str, dir_fd: int) -> bytes:
        """/proc/<name>/stat through its kept descriptor, opening (and keeping, within budget) one when
        there is none or the process it was opened for is gone."""
        kept = self._kept
        fd = kept.get(name)
        if fd is not None:
            try:
                return os.pread(fd, 4096, 0)
            except OSError as exc:
                del kept[name]
                os.close(fd)
                if exc.errno != errno.ESRCH:
                    raise
                # ESRCH: that process has exited; the listing shows the PID again, so a new one has it.
        fd = os.open(name + "/stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            data = os.pread(fd, 4096, 0)
        except BaseException:
            os.close(fd)
            raise
        if len(kept) < self._kept_budget:
            kept[name] = fd
        else:
            os.close(fd)
        return data

    def _scan(self, proc: str, dir_fd: int, live: bool) -> dict[str, Any]:
        try:
            listing = os.scandir(dir_fd)
        except OSError as exc:
            return unavailable(f"cannot list {proc}: {exc.strerror}")
        o_rdonly = os.O_RDONLY
        os_open, os_read, os_close = os.open, os.read, os.close
        states = dict.fromkeys(_BASE_STATES, 0)
        threads = 0
        vanished = 0
        malformed = 0
        rows: list[tuple[float, int, PidStat]] = []
        tck = self._clk_tck
        parsed = self._parsed
        reparsed: dict[str, tuple[bytes, PidStat]] = {}
        read_kept = self._read_kept if live and self._kept_budget else None
        listed: set[str] = set()
        with self._cpu.tick():
            per_second = self._cpu.per_second
            with listing:
                for entry in listing:
                    name = entry.name
                    if not (name.isascii() and name.isdigit()):
                        continue
                    try:
                        if read_kept is not None:
                            listed.add(name)
                            data = read_kept(name, dir_fd)
                        else:
                            fd = os_open(name + "/stat", o_rdonly, dir_fd=dir_fd)
                            try:
                                data = os_read(fd, 4096)
                            finally:
                                os_close(fd)
                    except OSError:  # exited since the listing (ENOENT, ESRCH) or hidden (hidepid)
                        vanished += 1
                        continue
                    known = parsed.get(name)
                    if known is not None and known[0] == data:
                        st = known[1]  # did not run since the last tick: the same line, parsed once
                    else:
                        try:
                            st = parse_stat(data)
                        except ParseError:
                            malformed += 1
                            continue
                    reparsed[name] = (data, st)
                    label = STATE_NAMES.get(st.state, st.state)
                    states[label] = states.get(label, 0) + 1
                    threads += st.num_threads
                    ticks = per_second((st.pid, st.starttime), st.utime + st.stime)
                    rows.append((-1.0 if ticks is None else ticks * 100.0 / tck, st.rss, st))
        self._parsed = reparsed
        if read_kept is not None:
            kept = self._kept
            for name in kept.keys() - listed:  # exited and reaped: no longer listed
                with contextlib.suppress(OSError):
                    os.close(kept.pop(name))
        if not rows and not vanished and not malformed:
            return unavailable(_NO_PIDS.format(proc=proc))
        top_cpu = [r for r in heapq.nlargest(self.top_n, rows, key=lambda r: r[0]) if r[0] >= 0.0]
        top_mem = heapq.nlargest(self.top_n, rows, key=lambda r: r[1])
        cmdlines: dict[str, str | None] = {}
        details: dict[int, dict[str, Any]] = {}
        self._identity_next = {}
        self._now = self._clock()
        with self._io.tick():
            for row in (*top_cpu, *top_mem):
                if id(row) not in details:
                    details[id(row)] = self._detail(row, cmdlines)
            # Keep I/O counters warm for processes that may enter a top list next tick: every process on
            # the first tick, then those that used CPU (a process that does I/O runs). Sleepers cost nothing.
            first = self._io_primed is False
            self._io_primed = True
            for row in rows:
                if (first or row[0] > 0.0) and id(row) not in details:
                    self._io_rates(row[2])
        self._identity = self._identity_next
        return {
            "total": len(rows),
            "threads": threads,
            "states": states,
            "top_n": self.top_n,
            "top_cpu": [details[id(r)] for r in top_cpu],
            "top_memory": [details[id(r)] for r in top_mem],
            "cmdlines": cmdlines,
            "vanished": vanished,
            "malformed": malformed,
        }

    def _detail(self, row: tuple[float, int, PidStat], cmdlines: dict[str, str | None]) -> dict[str, Any]:
        cpu, rss, st = row
        key = (st.pid, st.starttime)
        known = self._identity.get(key)
        if known is None or known[0] != st.comm or self._now - known[1] >= IDENTITY_REFRESH:
            known = (st.comm, self._now, *self._read_identity(st.pid))
        self._identity_next[key] = known
        user, cmdline = known[2], known[3]
        if not isinstance(cmdline, _Unread):
            cmdlines[str(st.pid)] = cmdline
        read_rate, write_rate = self._io_rates(st)
        return {
            "pid": st.pid,
            "name": st.comm,
            "user": user,
            "state": STATE_NAMES.get(st.state, st.state),
            "cpu_percent": None if cpu < 0 else round(cpu, 2),
            "rss_bytes": rss * self._page_size,
            "threads": st.num_threads,
            "read_bytes_per_second": read_rate,
            "write_bytes_per_second": write_rate,
        }

    def _read_identity(self, pid: int) -> tuple[str | None, str | _Unread | None]:
        """The user owning a process and its command line; None for what cannot be read (gone, hidden)."""
        base = f"{self._proc}/{pid}"
        user: str | None
        try:
            uid = parse_status_uid(_read(f"{base}/status", 8192))
            user = self._users.get(uid) or self._users.setdefault(uid, self._user_name(uid))
        except (OSError, ParseError):
            user = None
        cmdline: str | _Unread | None = _UNREAD
        with contextlib.suppress(OSError):
            cmdline = parse_cmdline(_read(f"{base}/cmdline", 65536))
        return user, cmdline

    def _io_rates(self, st: PidStat) -> tuple[float | None, float | None]:
        """Storage read/write bytes per second from /proc/<pid>/io; None when unreadable (EACCES without
        root or ptrace access, gone, no CONFIG_TASK_IO_ACCOUNTING) or on first sight."""
        try:
            io = parse_io(_read(f"{self._proc}/{st.pid}/io"))
        except (OSError, ParseError):
            return None, None
        key = (st.pid, st.starttime)
        return self._io.per_second((*key, "r"), io.read_bytes), self._io.per_second(
            (*key, "w"), io.write_bytes
        )


def _passwd_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
