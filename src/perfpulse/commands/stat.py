"""`perfpulse stat`: count events for a command, a process, a cgroup or the whole machine, like `perf stat`.

Event names, the output layout (value, unit, event, ``# derived`` comment, ``(NN.NN%)`` when multiplexed,
``<not supported>`` / ``<not counted>``), interval lines (``-I``) and the CSV columns of ``-x`` follow
perf, so habits and scripts carry over. ``--json`` prints one JSON document per report, one per line.

A command is started so that counting covers it from its ``exec`` on: the child is forked, waits on a pipe
while the counters are opened on it (disabled, with ``enable_on_exec`` and ``inherit``), and is then
released. When the kernel refuses to count kernel space for an unprivileged user (perf_event_paranoid 2),
the events are reopened user-space only (``:u``) and stderr says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import select
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from perfpulse.collectors.perf_events import base_name, derive, plan_groups

#: What `perf stat` counts when no -e is given (the clock is cpu-clock for system-wide scopes).
DEFAULT_EVENTS = (
    "task-clock",
    "context-switches",
    "cpu-migrations",
    "page-faults",
    "cycles",
    "instructions",
    "branches",
    "branch-misses",
)
_CLOCKS = ("task-clock", "cpu-clock")
#: Errors after which there is nothing sensible to count or run.
_FATAL_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EMFILE, errno.ESRCH})
_PERCENT_METRICS: dict[str, tuple[str, str]] = {
    "branch-misses": ("branch_miss_ratio", "of all branches"),
    "cache-misses": ("cache_miss_ratio", "of all cache refs"),
    "L1-dcache-load-misses": ("l1d_load_miss_ratio", "of all L1-dcache accesses"),
    "LLC-load-misses": ("llc_load_miss_ratio", "of all LL-cache accesses"),
    "dTLB-load-misses": ("dtlb_load_miss_ratio", "of all dTLB cache accesses"),
}
_STALLS = {"stalled-cycles-frontend": "frontend cycles idle", "stalled-cycles-backend": "backend cycles idle"}


class StatError(Exception):
    """A failure the user can act on: printed as advice, never as a traceback."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- event lists
def split_events(text: str) -> list[str | tuple[str, ...]]:
    """``-e`` text -> names and ``{a,b}`` groups; commas inside ``pmu/a=1,b=2/`` stay in the name."""
    items: list[str | tuple[str, ...]] = []
    group: list[str] | None = None
    current: list[str] = []
    in_pmu = False

    def flush() -> None:
        name = "".join(current).strip()
        current.clear()
        if name:
            (group if group is not None else items).append(name)

    for ch in text:
        if ch == "/":
            in_pmu = not in_pmu
            current.append(ch)
        elif ch == "," and not in_pmu:
            flush()
        elif ch == "{" and not in_pmu and group is None and not "".join(current).strip():
            group = []
        elif ch == "}" and not in_pmu and group is not None:
            flush()
            if group:
                items.append(tuple(group))
            group = None
        else:
            current.append(ch)
    if in_pmu or group is not None:
        raise StatError(f"unbalanced '/' or '{{' in event list {text!r}", 2)
    flush()
    return items


# -- one row of output
@dataclass(frozen=True, slots=True)
class Row:
    """One event in one report: its scaled value, or why there is none."""

    event: str
    value: float | None = None
    enabled: int = 0
    running: int = 0
    error: str | None = None  # set when the event could not be opened (<not supported>)

    @property
    def status(self) -> str:
        if self.error is not None:
            return "not supported"
        return "not counted" if self.value is None else "counted"

    @property
    def multiplexed_percent(self) -> float | None:
        """Share of the enabled time the counter ran, when below 100% (the PMU multiplexed it)."""
        if self.value is None or not self.enabled or self.running >= self.enabled:
            return None
        return 100.0 * self.running / self.enabled

    @property
    def is_clock(self) -> bool:
        return base_name(self.event) in _CLOCKS


@dataclass(frozen=True, slots=True)
class Metric:
    value: float
    unit: str
    percent: bool = False


def metrics(rows: Sequence[Row], group_of: Mapping[str, int], elapsed_ns: float) -> dict[str, Metric]:
    """perf's ``# ...`` comments per event: CPUs utilized, GHz, insn per cycle, miss %, K/sec."""
    values = {r.event: r.value for r in rows if r.error is None}
    derived = derive(values, group_of)
    clock_ns = next((r.value for r in rows if r.is_clock and r.value), None)
    cycles = next((r.value for r in rows if base_name(r.event) == "cycles" and r.value is not None), None)
    out: dict[str, Metric] = {}
    for row in rows:
        if row.value is None:
            continue
        base = base_name(row.event)
        if row.is_clock:
            if elapsed_ns > 0:
                out[row.event] = Metric(row.value / elapsed_ns, "CPUs utilized")
        elif base == "instructions" and derived.get("ipc") is not None:
            out[row.event] = Metric(_f(derived["ipc"]), "insn per cycle")
        elif base in _PERCENT_METRICS and derived.get(_PERCENT_METRICS[base][0]) is not None:
            key, text = _PERCENT_METRICS[base]
            out[row.event] = Metric(100.0 * _f(derived[key]), text, percent=True)
        elif base in _STALLS and cycles:
            out[row.event] = Metric(100.0 * row.value / cycles, _STALLS[base], percent=True)
        elif base == "cycles" and clock_ns:
            out[row.event] = Metric(row.value / clock_ns, "GHz")
        elif clock_ns:
            rate = row.value / (clock_ns / 1e9)
            prefix, scale = next(
                ((p, s) for p, s in (("G", 1e9), ("M", 1e6), ("K", 1e3)) if rate >= s), ("", 1)
            )
            out[row.event] = Metric(rate / scale, f"{prefix}/sec")
    return out


def _f(value: float | None) -> float:
    return 0.0 if value is None else value


def _value_text(row: Row) -> tuple[str, str]:
    if row.error is not None:
        return "<not supported>", ""
    if row.value is None:
        return "<not counted>", "msec" if row.is_clock else ""
    if row.is_clock:
        return f"{row.value / 1e6:.2f}", "msec"
    return f"{round(row.value)}", ""


# -- the three output formats
def format_human(
    rows: Sequence[Row], found: Mapping[str, Metric], *, timestamp: float | None = None
) -> list[str]:
    """Rows in perf's aligned layout; with ``timestamp`` each line starts with it (interval mode)."""
    lines = []
    for row in rows:
        value, unit = _value_text(row)
        line = f"{value:>18} {unit:<4} {row.event:<32} "
        metric = found.get(row.event)
        if metric is not None:
            number = f"{metric.value:7.2f}%" if metric.percent else f"{metric.value:8.3f}"
            line += f"# {number} {metric.unit:<23}"
        else:
            line += " " * 34
        pct = row.multiplexed_percent
        if pct is not None:
            line += f"  ({pct:.2f}%)"
        if timestamp is not None:
            line = f"{timestamp:16.9f} {line}"
        lines.append(line.rstrip())
    return lines


def format_csv(
    rows: Sequence[Row], found: Mapping[str, Metric], sep: str, *, timestamp: float | None = None
) -> list[str]:
    """perf's ``-x`` columns: value, unit, event, run time (ns), % running, metric value, metric unit."""
    lines = []
    for row in rows:
        value, unit = _value_text(row)
        pct = 100.0 * row.running / row.enabled if row.enabled else 100.0
        metric = found.get(row.event)
        m_value = "" if metric is None else f"{metric.value:.2f}" if metric.percent else f"{metric.value:.3f}"
        m_unit = "" if metric is None else (f"% {metric.unit}" if metric.percent else metric.unit)
        cols = [value, unit, row.event, str(row.running), f"{pct:.2f}", m_value, m_unit]
        if timestamp is not None:
            cols.insert(0, f"{timestamp:.9f}")
        lines.append(sep.join(cols))
    return lines


def report_json(
    rows: Sequence[Row],
    found: Mapping[str, Metric],
    *,
    target: str,
    elapsed: float,
    timestamp: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """One report as one JSON document on one line (JSON lines in interval mode)."""
    events = []
    for row in rows:
        metric = found.get(row.event)
        events.append(
            {
                "event": row.event,
                "status": row.status,
                "value": row.value,
                "unit": "nanoseconds" if row.is_clock else "count",
                "enabled_ns": row.enabled,
                "running_ns": row.running,
                "running_ratio": row.running / row.enabled if row.enabled else None,
                "reason": row.error,
                "metric": None
                if metric is None
                else {"value": metric.value, "unit": ("% " if metric.percent else "") + metric.unit},
            }
        )
    doc: dict[str, Any] = {"target": target, "elapsed_seconds": elapsed}
    if timestamp is not None:
        doc["interval"] = timestamp
    doc["events"] = events
    doc.update(extra or {})
    return json.dumps(doc)


# -- the counted command
class Child:
    """A forked command held before ``exec`` until its counters are open.

    The child blocks reading a pipe; ``release()`` writes one byte and then learns from a close-on-exec
    pipe whether ``exec`` worked (EOF) or failed (the errno arrives instead), which is perf's handshake.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        go_r, self._go_w = os.pipe()
        self._err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.pid = os.fork()
        if self.pid == 0:  # the child: no Python-level cleanup may run here
            try:
                os.close(self._go_w)
                os.close(self._err_r)
                # Python ignores SIGPIPE and SIGXFSZ; an ignored signal stays ignored across exec, so
                # `perfpulse stat -- yes | head` would never end. Give the command the defaults back.
                for sig in (signal.SIGINT, signal.SIGPIPE, signal.SIGXFSZ):
                    signal.signal(sig, signal.SIG_DFL)
                if os.read(go_r, 1) != b"\x01":
                    os._exit(127)
                os.close(go_r)
                os.execvp(self.argv[0], self.argv)  # noqa: S606 - argv as given, no shell
            except OSError as exc:
                with suppress(OSError):
                    os.write(err_w, str(exc.errno).encode())
            finally:
                os._exit(127)
        os.close(go_r)
        os.close(err_w)
        self.status: int | None = None
        self.rusage: Any = None

    def release(self) -> None:
        """Let the command exec; raises StatError when it cannot be run."""
        os.write(self._go_w, b"\x01")
        os.close(self._go_w)
        self._go_w = -1
        failure = os.read(self._err_r, 32)
        os.close(self._err_r)
        self._err_r = -1
        if failure:
            self.wait()
            code = int(failure)
            raise StatError(
                f"cannot run {self.argv[0]!r}: {os.strerror(code)}", 126 if code == errno.EACCES else 127
            )

    def wait(self) -> int:
        """Reap the child (once) and return its exit status as a shell reports it."""
        if self.status is None:
            _, raw, self.rusage = os.wait4(self.pid, 0)
            code = os.waitstatus_to_exitcode(raw)
            self.status = 128 - code if code < 0 else code
        return self.status

    def abandon(self) -> None:
        """Undo a child that will not be counted: it is never released, so closing the pipe ends it."""
        for fd in (self._go_w, self._err_r):
            if fd >= 0:
                os.close(fd)
        self._go_w = self._err_r = -1
        if self.status is None:
            with suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()


# -- what is counted
@dataclass(slots=True)
class Scope:
    """Where counters open: ``system`` (every online CPU), ``cgroup``, ``pid`` (each thread), ``command``."""

    kind: str
    label: str
    pids: tuple[int, ...] = ()
    cgroup: Path | None = None

    def open(self, groups: list[list[Any]], syscalls: Any) -> list[Any]:
        """One Counters per thread for ``pid``, else one; kernel-space refusals become ``:u`` counts."""
        from perfpulse.perf.counting import Counters, CountingError

        if self.kind == "system":
            return [Counters.system_wide(groups, syscalls=syscalls, enable=False)]
        if self.kind == "cgroup":
            assert self.cgroup is not None
            return [Counters.cgroup(groups, self.cgroup, syscalls=syscalls, enable=False)]
        opened: list[Any] = []
        last: CountingError | None = None
        for tid in self.pids:
            try:
                opened.append(
                    Counters.process(
                        groups,
                        tid,
                        inherit=True,
                        enable=False,
                        enable_on_exec=self.kind == "command",
                        user_only_fallback=True,
                        syscalls=syscalls,
                    )
                )
            except CountingError as exc:  # a thread that exited meanwhile is not an error
                last = exc
        if not opened and last is not None:
            raise last
        return opened


def process_threads(pid: int, proc: Path = Path("/proc")) -> tuple[int, ...]:
    """The thread ids of a process, so that every thread is counted as perf does with -p."""
    try:
        return tuple(sorted(int(t) for t in os.listdir(proc / str(pid) / "task")))
    except FileNotFoundError:
        raise StatError(f"no process with pid {pid} (has it exited?); list processes with `ps -e`") from None
    except PermissionError:
        raise StatError(f"cannot read {proc / str(pid) / 'task'}: permission denied") from None


def cgroup_root(mounts: Path = Path("/proc/self/mounts")) -> Path:
    """Where perf_event cgroups live: the v1 hierarchy with the perf_event controller, else cgroup2."""
    v2: Path | None = None
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup" and "perf_event" in fields[3].split(","):
            return Path(fields[1])
        if fields[2] == "cgroup2" and v2 is None:
            v2 = Path(fields[1])
    return v2 or Path("/sys/fs/cgroup")


def resolve_cgroup(name: str, root: Path | None = None) -> Path:
    """A cgroup named as perf names it (relative to the perf_event cgroup mount) or as an absolute path."""
    root = cgroup_root() if root is None else root
    given = Path(name)
    path = given if given.is_absolute() and given.is_relative_to(root) else root / name.lstrip("/")
    if not path.is_dir():
        raise StatError(
            f"no cgroup {name!r} (looked for {path}); name it relative to {root}, "
            "e.g. system.slice/ssh.service (`systemd-cgls` lists them)"
        )
    return path


def resolve_groups(items: Sequence[str | tuple[str, ...]]) -> tuple[list[list[Any]], list[str]]:
    """Names -> EventSpec groups, and the spec names in the order given (the print order).

    An unknown or malformed name is a usage error whose message lists close matches."""
    from perfpulse.perf.events import EventSyntaxError, UnknownEventError, resolve_events
    from perfpulse.perf.pmu import discover_pmus

    pmus = discover_pmus()
    resolved: dict[str, list[Any]] = {}
    for item in items:
        for name in (item,) if isinstance(item, str) else item:
            try:
                resolved.setdefault(name, resolve_events([name], pmus))
            except (UnknownEventError, EventSyntaxError) as exc:
                raise StatError(str(exc), 2) from None
    groups = [[spec for name in group for spec in resolved[name]] for group in plan_groups(items)]
    order = [spec.name for name in resolved for spec in resolved[name]]
    return groups, order


@dataclass(slots=True)
class Opened:
    counters: list[Any]
    failed: dict[str, Any]  # event name -> EventError
    order: list[str]  # event names in the order they are printed
    group_of: dict[str, int]
    user_only: set[str] = dataclasses.field(default_factory=set)

    def close(self) -> None:
        for c in self.counters:
            c.close()

    @property
    def display_groups(self) -> dict[str, int]:
        return {self.display(name): index for name, index in self.group_of.items()}

    def display(self, name: str) -> str:
        """perf marks an event it fell back to counting in user space only with ``:u``."""
        return f"{name}:u" if name in self.user_only else name


def open_all(groups: list[list[Any]], order: list[str], scope: Scope, syscalls: Any = None) -> Opened:
    """Open every group in ``scope``; what could not be opened is kept with its reason."""
    from perfpulse.perf.counting import CountingError

    try:
        counters = scope.open(groups, syscalls)
    except CountingError as exc:
        return Opened([], {e.event: e for e in exc.errors}, order, {})
    except ValueError as exc:  # an explicit {group} mixing PMUs
        raise StatError(str(exc), 2) from None
    out = Opened(counters, {}, order, {})
    for c in counters:
        out.user_only |= c.user_only
        for name, err in c.failed.items():
            out.failed.setdefault(name, err)
        for spec in c.events:
            out.group_of.setdefault(spec.name, c.group_of(spec.name))
    for name in out.group_of:
        out.failed.pop(name, None)  # counted in some thread
    return out


def rows_between(opened: Opened, now: list[Any], before: list[Any]) -> list[Row]:
    """One Row per event: scaled deltas summed over CPUs and threads, in print order."""
    sums: dict[str, list[float]] = {}
    counted: dict[str, bool] = {}
    for reading, previous in zip(now, before, strict=True):
        for name, by_cpu in reading.delta(previous).items():
            total = reading.total(by_cpu)
            acc = sums.setdefault(name, [0.0, 0, 0])
            acc[1] += total.enabled
            acc[2] += total.running
            if total.value is not None:
                acc[0] += total.value
                counted[name] = True
    rows = []
    for name in opened.order:
        if name in opened.failed:
            rows.append(Row(name, error=opened.failed[name].reason))
            continue
        value, enabled, running = sums.get(name, [0.0, 0, 0])
        counts = value if counted.get(name) else None
        rows.append(Row(opened.display(name), counts, int(enabled), int(running)))
    return rows


# -- the run
class _Signals:
    """SIGINT recorded and turned into a readable fd, so the wait loop wakes at once."""

    def __init__(self) -> None:
        self.count = 0
        self.first_at = 0.0
        self.read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._old_fd = signal.set_wakeup_fd(self._write_fd)
        self._old = signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        self.count += 1
        self.first_at = self.first_at or time.monotonic()

    def drain(self) -> None:
        with suppress(BlockingIOError):
            while os.read(self.read_fd, 64):
                pass

    def close(self) -> None:
        signal.signal(signal.SIGINT, self._old)
        signal.set_wakeup_fd(self._old_fd)
        os.close(self.read_fd)
        os.close(self._write_fd)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (OSError, AttributeError):  # kernel < 5.3: the loop polls instead
        return None


def _alive(pid: int, child: Child | None) -> bool:
    if child is not None:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Run:
    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        self.args = args
        self.out = out
        self.interval = args.interval / 1000.0 if args.interval else None

    # output -----------------------------------------------------------------------------------------------
    def report(self, rows: list[Row], group_of: Mapping[str, int], elapsed: float, **kw: Any) -> None:
        stamp = kw.pop("timestamp", None)
        found = metrics(rows, group_of, elapsed * 1e9)
        args = self.args
        if args.json:
            print(
                report_json(rows, found, target=self.label, elapsed=elapsed, timestamp=stamp, extra=kw),
                file=self.out,
            )
        elif args.separator is not None:
            print("\n".join(format_csv(rows, found, args.separator, timestamp=stamp)), file=self.out)
        elif stamp is not None:
            print("\n".join(format_human(rows, found, timestamp=stamp)), file=self.out)
        else:
            lines = ["", f" Performance counter stats for {self.label}:", ""]
            lines += format_human(rows, found)
            lines += ["", f"{elapsed:18.9f} seconds time elapsed", ""]
            if "user_seconds" in kw:
                lines += [
                    f"{kw['user_seconds']:18.9f} seconds user",
                    f"{kw['sys_seconds']:18.9f} seconds sys",
                    "",
                ]
            reasons: dict[str, list[str]] = {}
            for row in rows:
                if row.error is not None:
                    reasons.setdefault(row.error.replace(f" {row.event} ", " the event "), []).append(
                        row.event
                    )
            for reason, names in reasons.items():
                lines.append(f"# not supported: {', '.join(names)}: {reason}")
            if reasons:
                lines += ["# `perfpulse check` says what can be counted here and how to enable more", ""]
            print("\n".join(lines), file=self.out)
        self.out.flush()

    # the whole run
    def main(self) -> int:
        args = self.args
        command = list(args.command)
        if command[:1] == ["--"]:
            command = command[1:]
        scope = self.scope(command)
        wide = scope is not None and scope.kind in ("system", "cgroup")
        items = (
            split_events(",".join(args.event))
            if args.event
            else ["cpu-clock" if wide and e == "task-clock" else e for e in DEFAULT_EVENTS]
        )
        groups, order = resolve_groups(items)
        with ExitStack() as stack:
            child = Child(command) if command else None
            if child is not None:
                stack.callback(child.abandon)
            if scope is None:
                assert child is not None
                scope = Scope("command", "'" + " ".join(command) + "'", (child.pid,))
            self.label = scope.label
            opened = open_all(groups, order, scope)
            stack.callback(opened.close)
            self.check_opened(opened)
            signals = _Signals()
            stack.callback(signals.close)
            if scope.kind != "command":
                for c in opened.counters:
                    c.enable()
            before = [c.read() for c in opened.counters]
            start = time.monotonic()
            if child is not None:
                child.release()
            watched = child.pid if child is not None else (args.pid[0] if args.pid else None)
            self.wait(opened=opened, before=before, start=start, signals=signals, child=child, pid=watched)
            status = child.wait() if child is not None else 0
            elapsed = time.monotonic() - start
            if self.interval is None:
                rows = rows_between(opened, [c.read() for c in opened.counters], before)
                extra: dict[str, Any] = {}
                if child is not None and scope.kind == "command" and child.rusage is not None:
                    extra = {"user_seconds": child.rusage.ru_utime, "sys_seconds": child.rusage.ru_stime}
                if args.json and child is not None:
                    extra["exit_status"] = status
                self.report(rows, opened.display_groups, elapsed, **extra)
            return status
        return 0  # pragma: no cover - ExitStack does not swallow

    def scope(self, command: list[str]) -> Scope | None:
        args = self.args
        if args.pid:
            pids = tuple(t for p in args.pid for t in process_threads(p))
            return Scope("pid", "process id '" + ",".join(map(str, args.pid)) + "'", pids)
        if args.cgroup:
            path = resolve_cgroup(args.cgroup)
            return Scope("cgroup", f"cgroup '{args.cgroup}'", cgroup=path)
        if args.all_cpus:
            return Scope("system", "'system wide'")
        if not command:
            raise StatError("nothing to count: give a command after --, or -a, -p PID or -G CGROUP", 2)
        return None

    def check_opened(self, opened: Opened) -> None:
        errors = list(opened.failed.values())
        if not opened.counters and errors and any(e.errno in _FATAL_ERRNOS for e in errors):
            err = next(e for e in errors if e.errno in _FATAL_ERRNOS)
            hint = f"\n  {err.hint}" if err.hint else ""
            raise StatError(
                f"cannot count {err.event}: {err.reason}{hint}\n  run `perfpulse check` for details"
            )
        if opened.user_only:
            print(
                "perfpulse stat: not allowed to count kernel space here (kernel.perf_event_paranoid and no "
                "CAP_PERFMON); counting user space only (:u). `perfpulse check` says how to allow more.",
                file=sys.stderr,
            )

    def wait(
        self,
        *,
        opened: Opened,
        before: list[Any],
        start: float,
        signals: _Signals,
        child: Child | None,
        pid: int | None,
    ) -> None:
        """Until the command or process exits, or Ctrl-C; prints interval reports on the way.

        Ctrl-C with a command: the terminal already sent SIGINT to it; if it is still running half a second
        later it gets one SIGINT from us, and a second Ctrl-C kills it. Its counts are printed either way.
        """
        pidfd = _pidfd(pid) if pid is not None else None
        forwarded = False
        interval = self.interval
        next_at = None if interval is None else start + interval
        last_at = start
        if interval and not self.args.json and self.args.separator is None:
            print("#           time             counts unit events", file=self.out)
        try:
            while True:
                waits = [] if next_at is None else [max(0.0, next_at - time.monotonic())]
                if pid is not None and pidfd is None:
                    waits.append(0.05)
                if child is not None and signals.count == 1 and not forwarded:
                    waits.append(0.1)
                fds = [signals.read_fd] + ([pidfd] if pidfd is not None else [])
                ready, _, _ = select.select(fds, [], [], min(waits) if waits else None)
                signals.drain()
                exited = pid is not None and (pidfd in ready if pidfd is not None else not _alive(pid, child))
                if child is not None and signals.count and not exited:
                    if signals.count > 1:
                        with suppress(ProcessLookupError):
                            os.kill(child.pid, signal.SIGKILL)
                    elif not forwarded and time.monotonic() - signals.first_at > 0.5:
                        forwarded = True
                        with suppress(ProcessLookupError):
                            os.kill(child.pid, signal.SIGINT)
                stop = exited or (signals.count > 0 and child is None)
                now = time.monotonic()
                if next_at is not None and interval is not None and (now >= next_at or stop):
                    readings = [c.read() for c in opened.counters]
                    rows = rows_between(opened, readings, before)
                    self.report(rows, opened.display_groups, now - last_at, timestamp=now - start)
                    before, last_at = readings, now
                    while next_at <= now:
                        next_at += interval
                if stop:
                    return
        finally:
            if pidfd is not None:
                os.close(pidfd)


# -- command line
def _pid_list(text: str) -> list[int]:
    try:
        pids = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a process id list: {text!r} (e.g. 1234 or 1234,5678)"
        ) from None
    if not pids or any(p <= 0 for p in pids):
        raise argparse.ArgumentTypeError(f"not a process id list: {text!r} (e.g. 1234 or 1234,5678)")
    return pids


def _interval(text: str) -> int:
    try:
        ms = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"interval must be milliseconds, got {text!r}") from None
    if ms < 10:
        raise argparse.ArgumentTypeError("interval must be at least 10 ms")
    return ms


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "stat",
        help="count events for a command, process, cgroup or the whole machine (like perf stat)",
        description="Count perf events like `perf stat`. Reports go to stderr, as perf's do, unless -o.",
        epilog="examples: perfpulse stat -- make -j2 | perfpulse stat -a -I 1000 | "
        "perfpulse stat -e cycles,instructions -p 1234 -- sleep 5",
    )
    p.add_argument(
        "-e", "--event", action="append", metavar="EV,...", help="events, perf's names; {a,b} groups"
    )
    target = p.add_mutually_exclusive_group()
    target.add_argument("-a", "--all-cpus", action="store_true", help="count the whole machine (every CPU)")
    target.add_argument(
        "-p", "--pid", type=_pid_list, metavar="PID", help="count existing process(es), every thread"
    )
    p.add_argument("-G", "--cgroup", metavar="CGROUP", help="count one cgroup (relative to /sys/fs/cgroup)")
    p.add_argument(
        "-I", "--interval-print", dest="interval", type=_interval, metavar="MS", help="print every MS ms"
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument(
        "-x", "--field-separator", dest="separator", metavar="SEP", help="CSV output, perf's columns"
    )
    fmt.add_argument("--json", action="store_true", help="one JSON document per report, one per line")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stderr")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]: the command to run and count")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.pid and args.cgroup:
        print("perfpulse stat: -p and -G do not go together", file=sys.stderr)
        return 2
    try:
        with ExitStack() as stack:
            out: TextIO = sys.stderr
            if args.output:
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            return _Run(args, out).main()
    except StatError as exc:
        print(f"perfpulse stat: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        raise  # the reader went away (`| head`): the CLI treats that as a normal end
    except OSError as exc:
        print(f"perfpulse stat: {exc}", file=sys.stderr)
        return 1
