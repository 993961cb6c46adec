"""Counter groups: open them per CPU, per process or per cgroup, enable, read, scale, close.

Why groups. The kernel schedules a group onto the PMU all at once or not at all, so the members of a
group are counted over exactly the same time; a ratio of two events (IPC, miss rates) is only meaningful
when both are in one group. When there are more events than counters the kernel multiplexes groups and
reports, per read, ``time_enabled`` (how long the group was enabled) and ``time_running`` (how long it was
actually on the PMU); the estimate is ``count * enabled / running`` and ``running == 0`` means the group
was never scheduled: "not counted", which is reported as ``None``, never as 0.

How groups are opened (as ``perf stat`` does, see DESIGN.md): the leader with ``disabled=1``, members with
``disabled=0``, then one ``PERF_EVENT_IOC_ENABLE`` on the leader without ``PERF_IOC_FLAG_GROUP``. Seen on
Linux 6.18: system-wide software groups opened any other way (leader enabled at
open; or every event disabled and a group-wide enable) left the members at 0; a test checks members.

How groups are read: ``read_format = GROUP | TOTAL_TIME_ENABLED | TOTAL_TIME_RUNNING | ID``, one ``read()``
per group per CPU into a preallocated buffer, unpacked with one precompiled ``struct.Struct``. The ids let
a reading be matched to event names even if the kernel's sibling order ever differed from ours. Scopes with
``inherit`` (a process and its future children) read each event's fd on its own instead (no
``FORMAT_GROUP``): perf_event_open(2) warns that inherit does not work with some read formats such as
``PERF_FORMAT_GROUP``, and older kernels refuse that read with EINVAL; deciding up front means a counter
never has to be reopened, which would lose the children already inherited. The events still share a group,
so they are still scheduled together.

Splitting: hardware events go in groups of at most ``max_group_size`` (default 4, the generic counters most
x86 cores have with SMT on); if the kernel still refuses a member (EINVAL/ENOSPC: the group cannot fit)
the group is split at that member and both halves retried. Software events share their own group(s),
uncore/RAPL events one group per PMU opened only on the PMU's ``cpumask`` CPUs with no exclude bits,
hybrid core events one group per core PMU on that PMU's CPUs; an explicit group of generic events on a
hybrid machine becomes one group per core PMU, as ``perf stat`` does. Nothing is ever ``pinned``: a
pinned group that cannot be scheduled goes into an error state and reads 0 silently.

File descriptors: every fd opened is recorded before anything else can fail and is closed on any error,
on ``close()``, on leaving a ``with`` block and (as a last resort) on garbage collection. Running out of
descriptors (EMFILE/ENFILE) aborts the whole open with a ``CountingError`` that says how many were needed.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import os
import struct
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from perfpulse.perf import _abi
from perfpulse.perf.events import EventSpec, resolve_events
from perfpulse.perf.pmu import Pmu, discover_pmus, format_cpulist, online_cpus

if TYPE_CHECKING:
    from perfpulse.perf.probe import Context

GROUP_READ_FORMAT = (
    _abi.PERF_FORMAT_GROUP
    | _abi.PERF_FORMAT_TOTAL_TIME_ENABLED
    | _abi.PERF_FORMAT_TOTAL_TIME_RUNNING
    | _abi.PERF_FORMAT_ID
)
SINGLE_READ_FORMAT = (
    _abi.PERF_FORMAT_TOTAL_TIME_ENABLED | _abi.PERF_FORMAT_TOTAL_TIME_RUNNING | _abi.PERF_FORMAT_ID
)
DEFAULT_MAX_GROUP_SIZE = 4
DEFAULT_MAX_SOFTWARE_GROUP_SIZE = 32

_SINGLE = struct.Struct("=4Q")  # value, time_enabled, time_running, id

# errnos that mean "this event cannot be opened here at all" (as opposed to a per-CPU condition).
_RESOURCE_ERRNOS = frozenset({_errno.EMFILE, _errno.ENFILE})
_SPLIT_ERRNOS = frozenset({_errno.EINVAL, _errno.ENOSPC})


class Syscalls(Protocol):
    """The four system calls counting needs; tests inject a fake to drive the hardware path."""

    def perf_event_open(self, attr: _abi.PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        """Open an event; raise OSError with the kernel's errno on failure (and leave attr as the kernel
        left it: on E2BIG the kernel writes the size it supports into ``attr.size``)."""
        ...

    def read(self, fd: int, size: int) -> bytes: ...

    def ioctl(self, fd: int, request: int, arg: int) -> int: ...

    def close(self, fd: int) -> None: ...


@runtime_checkable
class SupportsReadInto(Protocol):
    """Optional fast path: read straight into a preallocated buffer (what ``LinuxSyscalls`` does)."""

    def readinto(self, fd: int, buf: bytearray) -> int: ...


class LinuxSyscalls:
    """The real thing: ``syscall(__NR_perf_event_open, ...)`` via ctypes, ``os.readv``, ``fcntl.ioctl``."""

    def __init__(self, machine: str | None = None) -> None:
        import ctypes

        self.nr = _abi.syscall_number(machine)
        # A private CDLL handle so the argtypes set here never leak into anyone else's libc.syscall.
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.syscall
        fn.restype = ctypes.c_long
        fn.argtypes = (
            ctypes.c_long,
            ctypes.c_void_p,
            ctypes.c_long,
            ctypes.c_long,
            ctypes.c_long,
            ctypes.c_ulong,
        )
        self._syscall = fn
        # ioctl through ctypes too: fcntl.ioctl passes an int argument as a C int, which would truncate
        # the pointer PERF_EVENT_IOC_ID writes through.
        ioctl = libc.ioctl
        ioctl.restype = ctypes.c_int
        ioctl.argtypes = (ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong)
        self._ioctl = ioctl
        self._ctypes = ctypes

    def perf_event_open(self, attr: _abi.PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        ctypes = self._ctypes
        fd = int(self._syscall(self.nr, ctypes.addressof(attr), pid, cpu, group_fd, flags))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    def read(self, fd: int, size: int) -> bytes:
        return os.read(fd, size)

    def readinto(self, fd: int, buf: bytearray) -> int:
        return os.readv(fd, (buf,))

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        ret = int(self._ioctl(fd, request, arg))
        if ret < 0:
            err = self._ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return ret

    def close(self, fd: int) -> None:
        os.close(fd)


_default_syscalls: LinuxSyscalls | None = None


def default_syscalls() -> LinuxSyscalls:
    """One shared LinuxSyscalls (raises UnsupportedArch on machines without a known syscall number)."""
    global _default_syscalls
    if _default_syscalls is None:
        _default_syscalls = LinuxSyscalls()
    return _default_syscalls


def _syscalls_or_error(syscalls: Syscalls | None) -> Syscalls:
    """The given layer, or the real one; an unknown architecture becomes a CountingError like any other
    reason nothing can be counted, so callers handle one exception type."""
    if syscalls is not None:
        return syscalls
    try:
        return default_syscalls()
    except _abi.UnsupportedArch as exc:
        err = EventError(
            event="*",
            errno=_errno.ENOSYS,
            reason=exc.reason,
            hint="perfpulse's perf layer needs the perf_event_open syscall number of this architecture",
        )
        raise CountingError([err]) from exc


def open_event(  # noqa: PLR0917 (mirrors the syscall's own argument list)
    syscalls: Syscalls, attr: _abi.PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int
) -> int:
    """``perf_event_open`` with the E2BIG handshake.

    A kernel older than our struct accepts the larger size as long as the bytes it does not know are
    zero; if they are not (or it refuses the size), it answers E2BIG and writes its own size into
    ``attr.size``. Retrying with that size is safe only when everything past it is zero, otherwise the
    event would silently lose a field (config3, say) and count something else.
    """
    try:
        return syscalls.perf_event_open(attr, pid, cpu, group_fd, flags)
    except OSError as exc:
        if exc.errno != _errno.E2BIG:
            raise
        ours = _abi.PERF_ATTR_SIZE_VER8
        theirs = int(attr.size)
        if not (_abi.PERF_ATTR_SIZE_VER0 <= theirs < ours) or any(bytes(attr)[theirs:ours]):
            attr.size = ours
            raise
        attr.size = theirs
        return syscalls.perf_event_open(attr, pid, cpu, group_fd, flags)


@dataclass(frozen=True, slots=True)
class EventError:
    """Why one event could not be counted: errno, a sentence for a human, and what to do about it."""

    event: str
    errno: int
    reason: str
    hint: str
    cpu: int | None = None

    @property
    def errno_name(self) -> str:
        return _errno.errorcode.get(self.errno, str(self.errno))

    def as_dict(self) -> dict[str, object]:
        return {
            "event": self.event,
            "errno": self.errno,
            "error": self.errno_name,
            "reason": self.reason,
            "hint": self.hint,
            "cpu": self.cpu,
        }


class CountingError(OSError):
    """Nothing could be opened (or the process ran out of file descriptors); ``errors`` says why per
    event."""

    def __init__(self, errors: Sequence[EventError], message: str | None = None) -> None:
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        if message is None:
            if first is None:
                message = "no events to count"
            else:
                reasons = dict.fromkeys(f"{e.event}: {e.reason}" for e in self.errors)
                message = "could not count any event — " + "; ".join(reasons)
                if first.hint:
                    message += f" (fix: {first.hint})"
        super().__init__(first.errno if first else _errno.EINVAL, message)
        self.reason = first.reason if first else message
        self.hint = first.hint if first else ""

    def __str__(self) -> str:
        return str(self.strerror)


class RawCount(NamedTuple):
    """One event's cumulative count on one CPU since open, with the group's cumulative times (ns)."""

    value: int
    enabled: int
    running: int


class Scaled(NamedTuple):
    """One interval: ``value = raw * enabled / running`` (None when running == 0: not counted) and
    ``ratio = running / enabled`` (the fraction of the interval the event was on the PMU)."""

    value: float | None
    raw: int
    enabled: int
    running: int
    ratio: float | None


def _scaled(raw: int, enabled: int, running: int) -> Scaled:
    value = raw * enabled / running if running > 0 else None
    ratio = running / enabled if enabled > 0 else None
    return Scaled(value, raw, enabled, running, ratio)


class Reading(dict[str, dict[int, RawCount]]):
    """Per event name, per CPU (-1 for a process scope), the cumulative ``RawCount``.

    ``timestamp`` is ``time.monotonic_ns()`` at the read, for rates.
    """

    __slots__ = ("timestamp",)

    def __init__(self, timestamp: int = 0) -> None:
        super().__init__()
        self.timestamp = timestamp

    def delta(self, prev: Reading | None) -> dict[str, dict[int, Scaled]]:
        """The interval since ``prev``, scaled. An event/CPU missing from ``prev`` (first read) or whose
        counts went backwards (counters reopened) yields its counts since open."""
        out: dict[str, dict[int, Scaled]] = {}
        for name, per_cpu in self.items():
            before = prev.get(name) if prev is not None else None
            row: dict[int, Scaled] = {}
            for cpu, cur in per_cpu.items():
                old = before.get(cpu) if before is not None else None
                if (
                    old is None
                    or cur.value < old.value
                    or cur.enabled < old.enabled
                    or cur.running < old.running
                ):
                    row[cpu] = _scaled(cur.value, cur.enabled, cur.running)
                else:
                    row[cpu] = _scaled(
                        cur.value - old.value, cur.enabled - old.enabled, cur.running - old.running
                    )
            out[name] = row
        return out

    @staticmethod
    def total(delta_for_event: Mapping[int, Scaled]) -> Scaled:
        """All CPUs of one event: raw counts and times summed, then scaled once (what ``perf stat -a``
        prints), so a total is None only when no CPU counted at all."""
        raw = enabled = running = 0
        for s in delta_for_event.values():
            raw += s.raw
            enabled += s.enabled
            running += s.running
        return _scaled(raw, enabled, running)


@dataclass(slots=True)
class _Plan:
    """One group as planned: its events (leader first) and the CPUs to open it on (-1: any CPU)."""

    index: int
    key: str
    specs: list[EventSpec]
    cpus: tuple[int, ...]


@dataclass(slots=True)
class _Group:
    """One group opened on one CPU."""

    plan: int
    cpu: int
    leader: int
    fds: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    ids: tuple[int, ...] = ()
    single: bool = False
    buf: bytearray = field(default_factory=bytearray)
    layout: struct.Struct = _SINGLE


class _NeedsSplit(Exception):
    def __init__(self, at: int) -> None:
        super().__init__(at)
        self.at = at


class _ResourceExhausted(Exception):
    def __init__(self, exc: OSError, spec: EventSpec, cpu: int) -> None:
        super().__init__(exc)
        self.exc = exc
        self.spec = spec
        self.cpu = cpu


EventsArg = Iterable["EventSpec | str | Sequence[EventSpec | str]"]


def _split_explicit(specs: list[EventSpec]) -> list[list[EventSpec]]:
    """An explicit group as the groups it can be opened as: itself when its events share one PMU.

    On a hybrid machine a generic name in a group expands into one event per core PMU, and no group can
    span two PMUs; like ``perf stat``, the group is then split into one group per core PMU (in order of
    first appearance, members keeping the caller's order), each opened on that PMU's CPUs. The members of
    each part still count together, so a ratio within one part stays exact. Any other mix (hardware with
    software, two uncore PMUs) is refused: no split would keep the group the caller asked for.
    """
    parts: dict[str, list[EventSpec]] = {}
    for spec in specs:
        parts.setdefault(spec.group_key, []).append(spec)
    if len(parts) == 1:
        return [specs]
    if all(key.startswith("core:") and key != "core:" for key in parts):
        return list(parts.values())
    raise ValueError(
        f"events {[s.name for s in specs]} cannot share one group: they belong to "
        f"different PMUs ({', '.join(sorted(parts))})"
    )


class Counters:
    """Open counter groups for one scope. Build with ``system_wide``, ``process`` or ``cgroup``.

    ``events`` are the specs that opened (on at least one CPU); ``failed`` maps each event that could not
    be opened anywhere to its ``EventError``; ``cpu_errors`` lists events that opened on some CPUs only.
    ``read()`` is the hot path: one ``read()`` per group per CPU, no allocation beyond the result dicts.
    Counts are raw event counts; a spec's sysfs ``scale``/``unit`` (RAPL joules, say) is the caller's to
    apply, via ``spec(name)``.
    """

    def __init__(
        self,
        *,
        scope: str,
        pid: int,
        flags: int,
        inherit: bool,
        enable_on_exec: bool,
        syscalls: Syscalls,
        max_group_size: int,
        context: Context | None = None,
    ) -> None:
        self.scope = scope
        self._pid = pid
        self._flags = flags
        self._inherit = inherit
        self._enable_on_exec = enable_on_exec
        self._sys = syscalls
        self._fast = isinstance(syscalls, SupportsReadInto)
        self._max_group = max(1, max_group_size)
        self._groups: list[_Group] = []
        self._fds: list[int] = []
        self._plans: list[_Plan] = []
        self._specs: dict[str, EventSpec] = {}
        self._group_of: dict[str, int] = {}
        self._names: tuple[str, ...] = ()
        self._closed = False
        self._context = context
        self.events: list[EventSpec] = []
        self.failed: dict[str, EventError] = {}
        self.cpu_errors: dict[str, dict[int, EventError]] = {}
        self.user_only: set[str] = set()
        self.last_read_errors: list[tuple[str, int, OSError]] = []

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def system_wide(
        cls,
        events: EventsArg,
        *,
        cpus: Iterable[int] | None = None,
        syscalls: Syscalls | None = None,
        pmus: Mapping[str, Pmu] | None = None,
        sysfs_root: Path = Path("/sys"),
        max_group_size: int = DEFAULT_MAX_GROUP_SIZE,
        enable: bool = True,
        context: Context | None = None,
    ) -> Counters:
        """One group set per online CPU (pid=-1): everything that runs there, kernel included."""
        scope_cpus = tuple(sorted(set(cpus))) if cpus is not None else online_cpus(sysfs_root)
        self = cls(
            scope="system-wide",
            pid=-1,
            flags=_abi.PERF_FLAG_FD_CLOEXEC,
            inherit=False,
            enable_on_exec=False,
            syscalls=_syscalls_or_error(syscalls),
            max_group_size=max_group_size,
            context=context,
        )
        self._open(events, scope_cpus, pmus, sysfs_root, enable=enable, user_only_fallback=False)
        return self

    @classmethod
    def process(
        cls,
        events: EventsArg,
        pid: int,
        *,
        inherit: bool = True,
        syscalls: Syscalls | None = None,
        pmus: Mapping[str, Pmu] | None = None,
        max_group_size: int = DEFAULT_MAX_GROUP_SIZE,
        enable: bool = True,
        enable_on_exec: bool = False,
        user_only_fallback: bool = False,
        context: Context | None = None,
    ) -> Counters:
        """One process (0 = this one) on any CPU; with ``inherit`` its children created after the open
        are counted too. ``enable_on_exec`` leaves the counters off until the process execs (for a
        command started stopped, as ``perf stat -- CMD`` does). ``user_only_fallback`` retries an event
        refused with EACCES as ``:u`` (exclude kernel and hypervisor), the only thing an unprivileged
        process may count at paranoid 2; such events are listed in ``user_only``."""
        if not isinstance(pid, int) or pid < 0:
            raise ValueError(f"pid must be a non-negative integer, not {pid!r}")
        self = cls(
            scope="process",
            pid=pid,
            flags=_abi.PERF_FLAG_FD_CLOEXEC,
            inherit=inherit,
            enable_on_exec=enable_on_exec,
            syscalls=_syscalls_or_error(syscalls),
            max_group_size=max_group_size,
            context=context,
        )
        self._open(
            events,
            (-1,),
            pmus,
            Path("/sys"),
            enable=enable and not enable_on_exec,
            user_only_fallback=user_only_fallback,
        )
        return self

    @classmethod
    def cgroup(
        cls,
        events: EventsArg,
        path: str | os.PathLike[str],
        *,
        cpus: Iterable[int] | None = None,
        syscalls: Syscalls | None = None,
        pmus: Mapping[str, Pmu] | None = None,
        sysfs_root: Path = Path("/sys"),
        max_group_size: int = DEFAULT_MAX_GROUP_SIZE,
        enable: bool = True,
        context: Context | None = None,
    ) -> Counters:
        """Tasks of one cgroup (its directory, v2 or the v1 perf_event hierarchy), per online CPU: the
        kernel only supports cgroup events per CPU (``PERF_FLAG_PID_CGROUP`` with cpu >= 0)."""
        scope_cpus = tuple(sorted(set(cpus))) if cpus is not None else online_cpus(sysfs_root)
        try:
            dir_fd = os.open(os.fspath(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            err = EventError(
                event="*",
                errno=exc.errno or _errno.ENOENT,
                reason=f"cannot open cgroup directory {os.fspath(path)!r}: {exc.strerror}",
                hint="pass the cgroup's directory, e.g. /sys/fs/cgroup/system.slice/nginx.service",
            )
            raise CountingError([err]) from exc
        try:
            self = cls(
                scope="cgroup",
                pid=dir_fd,
                flags=_abi.PERF_FLAG_FD_CLOEXEC | _abi.PERF_FLAG_PID_CGROUP,
                inherit=False,
                enable_on_exec=False,
                syscalls=_syscalls_or_error(syscalls),
                max_group_size=max_group_size,
                context=context,
            )
            self._open(events, scope_cpus, pmus, sysfs_root, enable=enable, user_only_fallback=False)
        finally:
            os.close(dir_fd)  # the kernel holds its own reference to the cgroup from each event
        return self

    # -- planning -------------------------------------------------------------------------------------
    def _normalize(
        self, events: EventsArg, pmus: Mapping[str, Pmu] | None
    ) -> list[tuple[list[EventSpec], bool]]:
        """Events as (specs, explicit-group?) units; strings are parsed (and expanded on hybrid/uncore)."""
        units: list[tuple[list[EventSpec], bool]] = []
        if isinstance(events, (str, EventSpec)):
            events = [events]
        for item in events:
            if isinstance(item, EventSpec):
                units.append(([item], False))
            elif isinstance(item, str):
                units.extend(([s], False) for s in resolve_events([item], pmus))
            elif isinstance(item, Sequence):
                specs: list[EventSpec] = []
                for sub in item:
                    if isinstance(sub, EventSpec):
                        specs.append(sub)
                    elif isinstance(sub, str):
                        specs.extend(resolve_events([sub], pmus))
                    else:
                        raise TypeError(f"an event must be a name or an EventSpec, not {type(sub).__name__}")
                if specs:
                    units.extend((part, True) for part in _split_explicit(specs))
            else:
                raise TypeError(f"an event must be a name or an EventSpec, not {type(item).__name__}")
        seen: set[str] = set()
        for specs, _ in units:
            for s in specs:
                if s.name in seen:
                    raise ValueError(f"event {s.name!r} is listed twice")
                seen.add(s.name)
        return units

    def _plan(self, units: list[tuple[list[EventSpec], bool]], scope_cpus: tuple[int, ...]) -> list[_Plan]:
        plans: list[_Plan] = []
        open_by_key: dict[str, _Plan] = {}
        for specs, explicit in units:
            key = specs[0].group_key
            cpus = self._cpus_for(specs[0], scope_cpus)
            if explicit:
                plans.append(_Plan(len(plans), key, list(specs), cpus))
                continue
            spec = specs[0]
            limit = DEFAULT_MAX_SOFTWARE_GROUP_SIZE if key == "software" else self._max_group
            current = open_by_key.get(key)
            if current is None or len(current.specs) >= limit:
                current = _Plan(len(plans), key, [], cpus)
                plans.append(current)
                open_by_key[key] = current
            current.specs.append(spec)
        return plans

    def _cpus_for(self, spec: EventSpec, scope_cpus: tuple[int, ...]) -> tuple[int, ...]:
        if scope_cpus == (-1,):
            return scope_cpus
        if spec.cpus is None:
            return scope_cpus
        if spec.uncore:
            # Socket-wide PMUs: the cpumask CPUs, whatever CPUs the caller asked for (one reader per
            # socket is what makes the count right), skipping any that went offline.
            online = set(scope_cpus)
            usable = tuple(c for c in spec.cpus if c in online)
            return usable or spec.cpus
        allowed = set(spec.cpus)
        return tuple(c for c in scope_cpus if c in allowed)

    # -- opening --------------------------------------------------------------------------------------
    def _open(
        self,
        events: EventsArg,
        scope_cpus: tuple[int, ...],
        pmus: Mapping[str, Pmu] | None,
        sysfs_root: Path,
        *,
        enable: bool,
        user_only_fallback: bool,
    ) -> None:
        if isinstance(events, (str, EventSpec)):
            events = [events]
        events = list(events)
        if pmus is None and any(not isinstance(e, EventSpec) for e in events):
            pmus = discover_pmus(sysfs_root)  # once, not once per name
        units = self._normalize(events, pmus)
        if not units:
            raise ValueError("no events given")
        self._sysfs_root = sysfs_root
        self._pmus = pmus
        self._user_only_fallback = user_only_fallback
        self._input_order = [s for specs, _ in units for s in specs]
        pending = self._plan(units, scope_cpus)
        try:
            final: list[_Plan] = []
            while pending:
                plan = pending.pop(0)
                try:
                    self._open_plan(plan, len(final))
                except _NeedsSplit as split:
                    head = _Plan(plan.index, plan.key, plan.specs[: split.at], plan.cpus)
                    tail = _Plan(plan.index, plan.key, plan.specs[split.at :], plan.cpus)
                    pending[:0] = [head, tail]
                    continue
                if any(g.plan == len(final) for g in self._groups):
                    final.append(plan)
            self._plans = final
            self._finish_open(enable)
        except _ResourceExhausted as exc:
            self.close()
            needed = sum(len(p.specs) * len(p.cpus) for p in self._plan(units, scope_cpus))
            err = self._error(exc.spec, exc.exc.errno or _errno.EMFILE, exc.cpu, needed_fds=needed)
            raise CountingError([err]) from exc.exc
        except CountingError:
            self.close()
            raise
        except OSError as exc:  # a read of a freshly opened group failed: as unexpected as it gets
            self.close()
            err = EventError(
                event="*",
                errno=exc.errno or _errno.EIO,
                reason=f"setting up the counter groups failed: {exc}",
                hint="report this with the output of `perfpulse check --json`",
            )
            raise CountingError([err]) from exc
        except BaseException:
            self.close()
            raise
        if not self.events:
            errors = list(self.failed.values())
            self.close()
            raise CountingError(errors)

    def _attr(self, spec: EventSpec, leader: bool, single: bool) -> _abi.PerfEventAttr:
        attr = spec.to_attr()
        attr.read_format = SINGLE_READ_FORMAT if single else GROUP_READ_FORMAT
        attr.disabled = 1 if leader else 0
        attr.inherit = int(self._inherit)
        if leader and self._enable_on_exec:
            attr.enable_on_exec = 1
        return attr

    def _open_one(self, spec: EventSpec, cpu: int, group_fd: int, single: bool) -> int:
        attr = self._attr(spec, group_fd < 0, single)
        fd = open_event(self._sys, attr, self._pid, cpu, group_fd, self._flags)
        self._fds.append(fd)
        return fd

    def _open_plan(self, plan: _Plan, index: int) -> None:
        """Open one planned group on each of its CPUs. An event refused on the first CPU is dropped from
        the plan (it is unsupported, not a per-CPU condition); later refusals are per-CPU errors."""
        single = self._inherit
        specs = list(plan.specs)
        opened_here: list[_Group] = []
        if not plan.cpus:
            for spec in specs:
                where = f"{spec.pmu} (CPUs {format_cpulist(spec.cpus or ())})" if spec.pmu else "its PMU"
                self.failed[spec.name] = EventError(
                    event=spec.name,
                    errno=_errno.ENODEV,
                    reason=f"none of the CPUs counted here belong to {where}",
                    hint="include that PMU's CPUs in the CPU list, or leave the CPU list out",
                )
            return
        for cpu_i, cpu in enumerate(plan.cpus):
            group: _Group | None = None
            for pos, spec in enumerate(list(specs)):
                try:
                    fd = self._open_spec(spec, cpu, -1 if group is None else group.leader, single)
                except OSError as exc:
                    code = exc.errno or _errno.EIO
                    if code in _RESOURCE_ERRNOS:
                        raise _ResourceExhausted(exc, spec, cpu) from exc
                    if group is not None and code in _SPLIT_ERRNOS and spec.is_hardware and pos > 0:
                        for g in [*opened_here, group]:
                            self._close_group(g)
                        raise _NeedsSplit(plan.specs.index(spec)) from exc
                    err = self._error(spec, code, cpu)
                    if cpu_i == 0:
                        specs.remove(spec)
                        self.failed[spec.name] = err
                    else:
                        self.cpu_errors.setdefault(spec.name, {})[cpu] = err
                    continue
                if group is None:
                    group = _Group(plan=index, cpu=cpu, leader=fd, single=single)
                    opened_here.append(group)
                group.fds.append(fd)
                group.names.append(spec.name)
            if group is not None:
                self._prepare_group(group)
        plan.specs = specs
        self._groups.extend(opened_here)
        for spec in specs:
            if any(spec.name in g.names for g in opened_here):
                self._specs[spec.name] = spec.with_user_only() if spec.name in self.user_only else spec
                self._group_of[spec.name] = index
                self.failed.pop(spec.name, None)

    def _open_spec(self, spec: EventSpec, cpu: int, group_fd: int, single: bool) -> int:
        try:
            return self._open_one(spec, cpu, group_fd, single)
        except OSError as exc:
            if (
                exc.errno in (_errno.EACCES, _errno.EPERM)
                and self._user_only_fallback
                and not (spec.exclude_kernel and spec.exclude_hv)
                and not spec.uncore
            ):
                fd = self._open_one(spec.with_user_only(), cpu, group_fd, single)
                self.user_only.add(spec.name)
                return fd
            raise

    def _prepare_group(self, group: _Group) -> None:
        """Size the read buffer and learn the kernel's ids (and so the sibling order) with one read."""
        if group.single:
            group.buf = bytearray(_SINGLE.size)
            group.layout = _SINGLE
            ids = []
            for fd in group.fds:
                data = self._read(fd, group.buf, _SINGLE.size)
                ids.append(_SINGLE.unpack_from(data)[3])
            group.ids = tuple(ids)
            return
        n = len(group.fds)
        group.layout = struct.Struct(f"={3 + 2 * n}Q")
        group.buf = bytearray(group.layout.size)
        data = self._read(group.leader, group.buf, group.layout.size)
        values = group.layout.unpack_from(data)
        if values[0] != n:
            raise OSError(_errno.EIO, f"group read returned {values[0]} events, expected {n}")
        read_ids = tuple(values[4::2])
        own = self._event_ids(group.fds)
        # The kernel lists siblings in the order they joined, so the read's order is ours; the ids each
        # fd reports for itself make that an established fact rather than an assumption.
        group.ids = own if own is not None and sorted(own) == sorted(read_ids) else read_ids

    def _event_ids(self, fds: list[int]) -> tuple[int, ...] | None:
        """Each fd's kernel id via PERF_EVENT_IOC_ID, or None when the syscall layer cannot tell."""
        import ctypes

        out = ctypes.c_uint64()
        ids: list[int] = []
        for fd in fds:
            out.value = 0
            try:
                self._sys.ioctl(fd, _abi.PERF_EVENT_IOC_ID, ctypes.addressof(out))
            except OSError:
                return None
            ids.append(int(out.value))
        return tuple(ids)

    def _finish_open(self, enable: bool) -> None:
        # ``events`` keeps the caller's order (for display); grouping is in ``groups``.
        order = [s for s in self._input_order if s.name in self._specs]
        self.events = [self._specs[s.name] for s in order]
        self._names = tuple(s.name for s in order)
        for name in list(self.cpu_errors):
            if name not in self._specs:
                del self.cpu_errors[name]
        if enable:
            self.enable()

    def _error(self, spec: EventSpec, code: int, cpu: int, needed_fds: int | None = None) -> EventError:
        from perfpulse.perf.probe import Context, explain  # lazy: probe imports this module

        if self._context is None:
            self._context = Context.gather(sysfs_root=self._sysfs_root, pmus=self._pmus)
        reason, hint = explain(code, spec, self.scope, context=self._context, needed_fds=needed_fds)
        return EventError(event=spec.name, errno=code, reason=reason, hint=hint, cpu=cpu)

    # -- control --------------------------------------------------------------------------------------
    def enable(self) -> None:
        """Start counting: ENABLE on each leader (members were opened enabled and follow their leader)."""
        for g in self._groups:
            self._sys.ioctl(g.leader, _abi.PERF_EVENT_IOC_ENABLE, 0)

    def disable(self) -> None:
        for g in self._groups:
            self._sys.ioctl(g.leader, _abi.PERF_EVENT_IOC_DISABLE, 0)

    def reset(self) -> None:
        """Zero every count (times keep running); rarely needed since deltas are taken anyway."""
        for fd in self._fds:
            self._sys.ioctl(fd, _abi.PERF_EVENT_IOC_RESET, 0)

    # -- reading --------------------------------------------------------------------------------------
    def _read(self, fd: int, buf: bytearray, size: int) -> bytes | bytearray:
        if self._fast:
            n = self._sys.readinto(fd, buf)  # type: ignore[attr-defined]
            if n != size:
                raise OSError(_errno.EIO, f"short perf read: {n} of {size} bytes")
            return buf
        data = self._sys.read(fd, size)
        if len(data) != size:
            raise OSError(_errno.EIO, f"short perf read: {len(data)} of {size} bytes")
        return data

    def read(self) -> Reading:
        """Cumulative counts of every open event on every CPU. A group whose read fails this time (a CPU
        going offline) is left out of this reading and noted in ``last_read_errors``; it never raises for
        one group."""
        if self._closed:
            raise ValueError("read() on closed Counters")
        reading = Reading(time.monotonic_ns())
        per_event: dict[str, dict[int, RawCount]] = {name: {} for name in self._names}
        errors: list[tuple[str, int, OSError]] = []
        fast = self._fast
        sys_ = self._sys
        for g in self._groups:
            try:
                if g.single:
                    for fd, name, expected in zip(g.fds, g.names, g.ids, strict=True):
                        if fast:
                            sys_.readinto(fd, g.buf)  # type: ignore[attr-defined]
                            v, ena, run, ident = _SINGLE.unpack_from(g.buf)
                        else:
                            v, ena, run, ident = _SINGLE.unpack(sys_.read(fd, _SINGLE.size))
                        if ident != expected:
                            raise OSError(_errno.EIO, "perf read returned an unexpected event id")
                        per_event[name][g.cpu] = RawCount(v, ena, run)
                    continue
                if fast:
                    n = sys_.readinto(g.leader, g.buf)  # type: ignore[attr-defined]
                    if n != g.layout.size:
                        raise OSError(_errno.EIO, f"short perf read: {n} of {g.layout.size} bytes")
                    values = g.layout.unpack_from(g.buf)
                else:
                    values = g.layout.unpack(sys_.read(g.leader, g.layout.size))
                ena = values[1]
                run = values[2]
                cpu = g.cpu
                if values[4::2] == g.ids:
                    for name, v in zip(g.names, values[3::2], strict=True):
                        per_event[name][cpu] = RawCount(v, ena, run)
                else:
                    by_id = dict(zip(g.ids, g.names, strict=True))
                    for v, ident in zip(values[3::2], values[4::2], strict=True):
                        found = by_id.get(ident)
                        if found is not None:
                            per_event[found][cpu] = RawCount(v, ena, run)
            except (OSError, struct.error, ValueError) as exc:
                err = exc if isinstance(exc, OSError) else OSError(_errno.EIO, str(exc))
                errors.append((g.names[0], g.cpu, err))
        reading.update(per_event)
        self.last_read_errors = errors
        return reading

    # -- introspection --------------------------------------------------------------------------------
    def group_of(self, name: str) -> int:
        """The index of the group ``name`` was opened in (same on every CPU); KeyError if not counting."""
        return self._group_of[name]

    def spec(self, name: str) -> EventSpec:
        return self._specs[name]

    @property
    def groups(self) -> list[list[str]]:
        """Event names per group index, leader first."""
        return [[s.name for s in p.specs] for p in self._plans]

    @property
    def fd_count(self) -> int:
        return len(self._fds)

    def __iter__(self) -> Iterator[EventSpec]:
        return iter(self.events)

    # -- teardown -------------------------------------------------------------------------------------
    def _close_group(self, group: _Group) -> None:
        for fd in group.fds:
            if fd in self._fds:
                self._fds.remove(fd)
                with contextlib.suppress(OSError):
                    self._sys.close(fd)
        group.fds.clear()

    def close(self) -> None:
        """Close every descriptor (members before leaders); safe to call twice."""
        fds, self._fds = self._fds, []
        self._groups = []
        self._closed = True
        for fd in reversed(fds):
            with contextlib.suppress(OSError):
                self._sys.close(fd)

    def __enter__(self) -> Counters:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fds", None):
            self.close()
