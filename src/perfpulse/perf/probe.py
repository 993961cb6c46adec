"""What this machine lets us count, and, for everything it does not, why and how to change that.

``perf_event_open`` answers a refusal with a bare errno, and the same errno means different things in
different situations: EACCES is the ``kernel.perf_event_paranoid`` policy or a missing capability, EPERM in a
container is usually its seccomp profile, ENOENT for ``cycles`` on a VM means the hypervisor exposes no
virtual PMU. ``explain()`` turns an errno plus what we know about the machine (a ``Context``: paranoid
level, effective capabilities, seccomp mode, hypervisor flag, PMUs in sysfs, the fd limit) into a sentence
and the exact fix. ``counting`` uses it for every ``EventError``; ``probe()`` runs the checks for a list of
events and is what ``perfpulse check`` prints.

Paranoid levels (Documentation/admin-guide/sysctl/kernel.rst): -1 everything allowed; 0 no raw tracepoint
access for unprivileged users; 1 no CPU-wide (system-wide) events; 2 (default since 4.6) no kernel-mode
counting; 3 (Debian/Ubuntu/Android patch) no perf_event_open at all for unprivileged users. CAP_PERFMON
(capability 38, Linux 5.8) or CAP_SYS_ADMIN (21) lift all of these.
"""

from __future__ import annotations

import errno as _errno
import os
import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perfpulse.perf import _abi
from perfpulse.perf.counting import Syscalls, default_syscalls, open_event
from perfpulse.perf.events import EventSpec, UnknownEventError, parse_event
from perfpulse.perf.pmu import Pmu, core_pmus, discover_pmus, online_cpus

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38

DEFAULT_EVENTS: tuple[str, ...] = (
    "cycles",
    "instructions",
    "branches",
    "branch-misses",
    "cache-references",
    "cache-misses",
    "L1-dcache-loads",
    "L1-dcache-load-misses",
    "LLC-loads",
    "LLC-load-misses",
    "dTLB-loads",
    "dTLB-load-misses",
    "stalled-cycles-frontend",
    "stalled-cycles-backend",
    "ref-cycles",
    "task-clock",
    "cpu-clock",
    "context-switches",
    "cpu-migrations",
    "page-faults",
    "minor-faults",
    "major-faults",
)

PARANOID_HELP: dict[int, str] = {
    -1: "no restrictions",
    0: "unprivileged users may count system-wide, but not read raw tracepoints",
    1: "unprivileged users may count their own processes, user and kernel mode, but not system-wide",
    2: "unprivileged users may count only the user-space part of their own processes",
    3: "unprivileged users may not use perf_event_open at all (a Debian/Ubuntu/Android addition)",
}

_HINT_CAPS = (
    "or grant CAP_PERFMON instead of root: `AmbientCapabilities=CAP_PERFMON` in the systemd unit, "
    "`setcap cap_perfmon=ep` on the binary, or `--cap-add PERFMON` for a container"
)
_HINT_NO_PMU = (
    "hardware counters need a PMU the kernel can see: on KVM/QEMU start the guest with `-cpu host` "
    "(libvirt: `<cpu mode='host-passthrough'/>` with `<pmu state='on'/>`), on VMware enable "
    "'Virtualize CPU performance counters', on a cloud choose a bare-metal or PMU-exposing instance "
    "type; software events (task-clock, page-faults, context-switches, ...) work without one"
)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _status_fields(proc_root: Path) -> dict[str, str]:
    text = _read(proc_root / "self" / "status") or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class Context:
    """The facts ``explain()`` reasons with; gathered once per probe/open."""

    paranoid: int | None = None
    cap_eff: int | None = None
    seccomp: int | None = None
    hypervisor: bool = False
    pmus: tuple[str, ...] = ()
    core_pmus: tuple[str, ...] = ()
    nofile: tuple[int, int] | None = None
    euid: int | None = None

    @property
    def cap_perfmon(self) -> bool:
        return self.cap_eff is not None and bool(self.cap_eff >> CAP_PERFMON & 1)

    @property
    def cap_sys_admin(self) -> bool:
        return self.cap_eff is not None and bool(self.cap_eff >> CAP_SYS_ADMIN & 1)

    @property
    def privileged(self) -> bool:
        return self.cap_perfmon or self.cap_sys_admin

    @classmethod
    def gather(
        cls,
        *,
        sysfs_root: Path = Path("/sys"),
        proc_root: Path = Path("/proc"),
        pmus: Mapping[str, Pmu] | None = None,
    ) -> Context:
        paranoid_text = _read(proc_root / "sys" / "kernel" / "perf_event_paranoid")
        try:
            paranoid = int(paranoid_text.strip()) if paranoid_text is not None else None
        except ValueError:
            paranoid = None
        status = _status_fields(proc_root)
        try:
            cap_eff: int | None = int(status["CapEff"], 16)
        except (KeyError, ValueError):
            cap_eff = None
        try:
            seccomp: int | None = int(status["Seccomp"])
        except (KeyError, ValueError):
            seccomp = None
        known = pmus if pmus is not None else discover_pmus(sysfs_root)
        try:
            nofile: tuple[int, int] | None = resource.getrlimit(resource.RLIMIT_NOFILE)
        except (OSError, ValueError):
            nofile = None
        return cls(
            paranoid=paranoid,
            cap_eff=cap_eff,
            seccomp=seccomp,
            hypervisor=detect_hypervisor(proc_root, sysfs_root),
            pmus=tuple(sorted(known)),
            core_pmus=tuple(p.name for p in core_pmus(known)),
            nofile=nofile,
            euid=os.geteuid(),
        )


def detect_hypervisor(proc_root: Path = Path("/proc"), sysfs_root: Path = Path("/sys")) -> bool:
    """x86 guests have the ``hypervisor`` CPUID flag in cpuinfo; Xen guests also ``/sys/hypervisor/type``."""
    cpuinfo = _read(proc_root / "cpuinfo") or ""
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")) and "hypervisor" in line.split(":", 1)[-1].split():
            return True
    hv = _read(sysfs_root / "hypervisor" / "type")
    return bool(hv and hv.strip())


def _is_hardware(event: EventSpec | None) -> bool:
    return event is not None and event.is_hardware


def explain(
    errno: int,
    event: EventSpec | str | None,
    scope: str,
    *,
    context: Context | None = None,
    needed_fds: int | None = None,
    pid: int | None = None,
) -> tuple[str, str]:
    """(reason, hint) for a refused ``perf_event_open``. ``scope`` is "system-wide", "process", "cgroup"."""
    ctx = context if context is not None else Context.gather()
    spec = event if isinstance(event, EventSpec) else None
    name: str = spec.name if spec is not None else str(event or "event")
    p = ctx.paranoid
    p_text = f"kernel.perf_event_paranoid is {p}" if p is not None else "kernel.perf_event_paranoid"
    caps_text = (
        "this process has CAP_PERFMON/CAP_SYS_ADMIN"
        if ctx.privileged
        else "this process has neither CAP_PERFMON nor CAP_SYS_ADMIN"
    )
    cpu_wide = scope in ("system-wide", "cgroup", "cpu")
    includes_kernel = spec is None or not spec.exclude_kernel

    if errno == _errno.EACCES:
        if ctx.privileged:
            return (
                f"perf_event_open for {name} was refused although this process has CAP_PERFMON or "
                "CAP_SYS_ADMIN: a security module (SELinux, AppArmor, kernel lockdown) denied it",
                "check the audit log (`journalctl -k | grep -i -e avc -e lockdown`) and allow perf_event "
                "for this program's security context",
            )
        if cpu_wide:
            return (
                f"{scope} counting of {name} is not permitted: it needs kernel.perf_event_paranoid <= 0 "
                f"or CAP_PERFMON; {p_text} and {caps_text}",
                f"`sysctl -w kernel.perf_event_paranoid=0` (persist it in /etc/sysctl.d/), {_HINT_CAPS}",
            )
        if p is not None and p >= 3:
            return (
                f"counting {name} is not permitted: {p_text}, which forbids perf_event_open for "
                f"unprivileged users entirely, and {caps_text}",
                f"`sysctl -w kernel.perf_event_paranoid=2` allows user-space counting of own processes; "
                f"{_HINT_CAPS}",
            )
        if includes_kernel and (p is None or p >= 2):
            return (
                f"counting {name} including kernel mode is not permitted: {p_text} (user space only "
                f"for unprivileged processes) and {caps_text}",
                "count user space only (`:u`, e.g. `cycles:u`, as `perfpulse stat` does by itself), or "
                f"`sysctl -w kernel.perf_event_paranoid=1`, {_HINT_CAPS}",
            )
        target = f"process {pid}" if pid is not None else "the target process"
        return (
            f"counting {name} in {target} is not permitted: it belongs to another user or is not "
            "traceable by this one (the ptrace access check perf applies to other processes)",
            f"run as the process's owner, or {_HINT_CAPS.removeprefix('or ')}",
        )
    if errno == _errno.EPERM:
        if ctx.seccomp == 2:
            return (
                f"perf_event_open for {name} was blocked by a seccomp filter (this process runs under "
                "one), as the default seccomp profiles of Docker and Podman do",
                "run the container with `--cap-add PERFMON` (Docker 20.10+ then allows perf_event_open "
                "in its default profile) or with `--security-opt seccomp=<profile.json>` whose profile "
                "allows perf_event_open; in Kubernetes use a Localhost seccompProfile that allows it",
            )
        return (
            f"perf_event_open for {name} was refused with EPERM: a security module (SELinux, "
            "AppArmor, kernel lockdown) denied it, or the PMU cannot apply the requested "
            "user/kernel exclusion",
            f"check the audit log (`journalctl -k | grep -i perf`); drop `:u`/`:k` modifiers; "
            f"{_HINT_CAPS.removeprefix('or ')}",
        )
    if errno == _errno.ENOENT:
        if spec is not None and spec.pmu is not None and spec.pmu not in ctx.pmus:
            return (
                f"no PMU named {spec.pmu} is registered (not in /sys/bus/event_source/devices)",
                "load the driver for that PMU (e.g. intel_rapl_perf, intel_uncore) or pick an event "
                "from `perfpulse check`",
            )
        if _is_hardware(spec) or spec is None:
            if not ctx.core_pmus:
                where = (
                    "; this is a virtual machine whose hypervisor exposes no virtual PMU"
                    if ctx.hypervisor
                    else ""
                )
                return (
                    f"no hardware PMU: the kernel registers no CPU performance monitoring unit (no cpu, "
                    f"cpu_core, cpu_atom or armv8_* under /sys/bus/event_source/devices), so {name} "
                    f"cannot be counted{where}",
                    _HINT_NO_PMU,
                )
            return (
                f"{name} is not supported by this CPU's PMU ({', '.join(ctx.core_pmus)}): the kernel has no "
                "encoding for it on this CPU model",
                "choose another event (`perfpulse check` lists the ones that open) or a raw/PMU event "
                "from the CPU vendor's event list",
            )
        return (
            f"{name} does not exist on this kernel (an event type or config it does not know)",
            "upgrade the kernel or choose another event",
        )
    if errno == _errno.EOPNOTSUPP:
        if spec is not None and spec.uncore and not cpu_wide:
            return _uncore_process(name, spec)
        if spec is not None and (spec.exclude_user or spec.exclude_kernel or spec.exclude_hv):
            return (
                f"the PMU behind {name} cannot filter by privilege level (the :u/:k modifier)",
                "drop the modifier and count all modes",
            )
        return (
            f"the PMU behind {name} does not support what was asked (this kind of event, sampling, or "
            "per-process counting)",
            "count it system-wide without modifiers, or choose another event",
        )
    if errno == _errno.EINVAL:
        if spec is not None and spec.uncore and not cpu_wide:
            return _uncore_process(name, spec)
        return (
            f"the kernel rejected the attributes of {name}: an event code or umask this PMU does not "
            "accept, a CPU outside the PMU's cpumask, or a group the PMU cannot schedule",
            "check the event encoding against the PMU's format (`ls /sys/bus/event_source/devices/*/"
            "format`), count it in a smaller group, or open uncore events on their cpumask CPUs",
        )
    if errno == _errno.ENODEV:
        return (
            f"{name} cannot be opened on that CPU: the CPU is offline or the event's PMU does not "
            "cover it (a hybrid CPU's other core type)",
            "count on online CPUs (/sys/devices/system/cpu/online); on hybrid CPUs use cpu_core/.../ "
            "and cpu_atom/.../ events, which perfpulse opens on their own CPUs",
        )
    if errno == _errno.EBUSY:
        return (
            f"the counter for {name} is held exclusively by someone else (another profiler's exclusive "
            "or pinned event, the NMI watchdog, or the hypervisor)",
            "stop the other profiler; `sysctl -w kernel.nmi_watchdog=0` frees the counter the watchdog holds",
        )
    if errno in (_errno.EMFILE, _errno.ENFILE):
        soft = ctx.nofile[0] if ctx.nofile else None
        need = (
            f"{needed_fds} descriptors are needed (one per event per CPU)"
            if needed_fds
            else ("each event on each CPU needs one descriptor")
        )
        if errno == _errno.ENFILE:
            return (
                f"the system-wide file table is full while opening {name}: {need}",
                "raise `sysctl -w fs.file-max=...` or close other files",
            )
        suggested = max(4096, 2 * needed_fds) if needed_fds else 65536
        return (
            f"out of file descriptors while opening {name}: {need} and RLIMIT_NOFILE allows "
            f"{soft if soft is not None else 'fewer'}",
            f"raise the limit: `ulimit -n {suggested}` before starting, or `LimitNOFILE={suggested}` "
            "in the systemd unit; or count fewer events or CPUs",
        )
    if errno == _errno.E2BIG:
        return (
            f"the kernel's perf_event_attr is older than the one perfpulse uses and {name} sets a field "
            "it does not know (config3 needs Linux 6.3)",
            "upgrade the kernel, or use an event that does not need the newer field",
        )
    if errno == _errno.ESRCH:
        who = f"process {pid}" if pid is not None else "the process"
        return (
            f"{who} does not exist (it exited, or the PID is wrong)",
            "check the PID (`ps -p PID`), or let perfpulse start it: `perfpulse stat -- CMD`",
        )
    if errno == _errno.ENOSYS:
        return (
            "this kernel has no perf_event_open (built without CONFIG_PERF_EVENTS) or the architecture "
            "is not supported",
            "use a kernel built with CONFIG_PERF_EVENTS=y",
        )
    if errno == _errno.EBADF:
        return (
            f"the cgroup or group descriptor for {name} is not valid",
            "pass an existing cgroup directory (cgroup v2, or the v1 perf_event hierarchy)",
        )
    if errno == _errno.ENOSPC:
        return (
            f"no room for {name}: the PMU's counters (or breakpoint slots) are all taken by the group",
            "count fewer events per group",
        )
    return (f"perf_event_open for {name} failed: {os.strerror(errno)}", "see perf_event_open(2), ERRORS")


def _uncore_process(name: str, spec: EventSpec) -> tuple[str, str]:
    return (
        f"{name} comes from {spec.pmu}, a socket-wide PMU (uncore/RAPL) that has no per-process counts",
        "count it system-wide (`perfpulse stat -a`); perfpulse opens it on the PMU's cpumask CPUs",
    )


@dataclass(frozen=True, slots=True)
class EventResult:
    """Whether one event opens here: system-wide, for this process, or only user-space for this process."""

    event: str
    ok: bool
    system_wide: bool = False
    process: bool = False
    user_only: bool = False
    errno: int | None = None
    reason: str | None = None
    hint: str | None = None

    @property
    def error(self) -> str | None:
        return _errno.errorcode.get(self.errno, str(self.errno)) if self.errno is not None else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "ok": self.ok,
            "system_wide": self.system_wide,
            "process": self.process,
            "user_only": self.user_only,
            "errno": self.errno,
            "error": self.error,
            "reason": self.reason,
            "hint": self.hint,
        }


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """Everything ``perfpulse check`` shows: the machine's perf facts and one ``EventResult`` per event.
    ``as_dict()`` is the JSON shape (``check --json`` and the REST API)."""

    kernel: str
    machine: str
    syscall: int | None
    paranoid: int | None
    paranoid_meaning: str | None
    capabilities: dict[str, bool]
    seccomp: int | None
    hypervisor: bool
    pmus: dict[str, int]
    core_pmus: list[str]
    online_cpus: list[int]
    events: list[EventResult] = field(default_factory=list)
    error: str | None = None

    @property
    def hardware_available(self) -> bool:
        return bool(self.core_pmus)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kernel": self.kernel,
            "machine": self.machine,
            "syscall": self.syscall,
            "paranoid": self.paranoid,
            "paranoid_meaning": self.paranoid_meaning,
            "capabilities": dict(self.capabilities),
            "seccomp": self.seccomp,
            "hypervisor": self.hypervisor,
            "pmus": dict(self.pmus),
            "core_pmus": list(self.core_pmus),
            "hardware_available": self.hardware_available,
            "online_cpus": list(self.online_cpus),
            "events": [e.as_dict() for e in self.events],
            "error": self.error,
        }


def _try_open(syscalls: Syscalls, spec: EventSpec, pid: int, cpu: int) -> int | None:
    """errno of opening ``spec`` alone, or None when it opened (and was closed again)."""
    attr = spec.to_attr()
    attr.disabled = 1
    attr.read_format = _abi.PERF_FORMAT_TOTAL_TIME_ENABLED | _abi.PERF_FORMAT_TOTAL_TIME_RUNNING
    try:
        fd = open_event(syscalls, attr, pid, cpu, -1, _abi.PERF_FLAG_FD_CLOEXEC)
    except OSError as exc:
        return exc.errno or _errno.EIO
    syscalls.close(fd)
    return None


def probe(
    events: Iterable[str] | None = None,
    *,
    sysfs_root: Path = Path("/sys"),
    proc_root: Path = Path("/proc"),
    syscalls: Syscalls | None = None,
) -> ProbeReport:
    """Check each event: system-wide on one CPU first; if refused, for this process, then user space only.

    ``ok`` means system-wide counting works (what the monitor needs); the other flags say what a
    ``perfpulse stat -- CMD`` could still do.
    """
    pmus = discover_pmus(sysfs_root)
    ctx = Context.gather(sysfs_root=sysfs_root, proc_root=proc_root, pmus=pmus)
    uname = os.uname()
    try:
        nr: int | None = _abi.syscall_number()
        error = None
    except _abi.UnsupportedArch as exc:
        nr, error = None, exc.reason
    cpus = list(online_cpus(sysfs_root))
    report_events: list[EventResult] = []
    if syscalls is None and error is None:
        syscalls = default_syscalls()
    for name in events if events is not None else DEFAULT_EVENTS:
        try:
            spec = parse_event(name, pmus)
        except (UnknownEventError, ValueError) as exc:
            report_events.append(EventResult(event=name, ok=False, reason=str(exc), hint=None))
            continue
        if syscalls is None:
            report_events.append(
                EventResult(event=name, ok=False, errno=_errno.ENOSYS, reason=error, hint=None)
            )
            continue
        cpu = spec.cpus[0] if spec.cpus else (cpus[0] if cpus else 0)
        err = _try_open(syscalls, spec, -1, cpu)
        if err is None:
            report_events.append(EventResult(event=name, ok=True, system_wide=True, process=True))
            continue
        reason, hint = explain(err, spec, "system-wide", context=ctx)
        proc_ok = user_ok = False
        if err in (_errno.EACCES, _errno.EPERM) and not spec.uncore:
            proc_err = _try_open(syscalls, spec, 0, -1)
            proc_ok = proc_err is None
            if not proc_ok:
                user_ok = _try_open(syscalls, spec.with_user_only(), 0, -1) is None
        report_events.append(
            EventResult(
                event=name,
                ok=False,
                process=proc_ok,
                user_only=user_ok,
                errno=err,
                reason=reason,
                hint=hint,
            )
        )
    paranoid = ctx.paranoid
    return ProbeReport(
        kernel=uname.release,
        machine=uname.machine,
        syscall=nr,
        paranoid=paranoid,
        paranoid_meaning=PARANOID_HELP.get(max(-1, min(3, paranoid))) if paranoid is not None else None,
        capabilities={"CAP_PERFMON": ctx.cap_perfmon, "CAP_SYS_ADMIN": ctx.cap_sys_admin},
        seccomp=ctx.seccomp,
        hypervisor=ctx.hypervisor,
        pmus={name: pmu.type for name, pmu in sorted(pmus.items())},
        core_pmus=list(ctx.core_pmus),
        online_cpus=cpus,
        events=report_events,
        error=error,
    )
