"""probe() and explain(): the errno -> reason and fix table, the facts gathered from /proc and /sys.

Contexts for explain() are built directly (a container, a VM, a paranoid-3 Debian host cannot all be made
here); the fixture /proc trees are written per test; probe() runs once for real on this machine and once
against the fake kernel (tests/perf/perf_fakes.py) standing in for a host with a PMU.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from perf_fakes import FakeKernel
from support import require_root

from perfpulse.perf import _abi
from perfpulse.perf.events import parse_event
from perfpulse.perf.pmu import core_pmus, discover_pmus
from perfpulse.perf.probe import CAP_PERFMON, CAP_SYS_ADMIN, Context, detect_hypervisor, explain, probe

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pmu"

UNPRIV = Context(paranoid=2, cap_eff=0, seccomp=0, hypervisor=True, pmus=("software",), core_pmus=())
VM_NO_PMU = UNPRIV
HOST = Context(paranoid=2, cap_eff=0, seccomp=0, pmus=("cpu", "software", "power"), core_pmus=("cpu",))
CONTAINER = Context(paranoid=2, cap_eff=0, seccomp=2, pmus=("cpu",), core_pmus=("cpu",))
DEBIAN3 = Context(paranoid=3, cap_eff=0, seccomp=0, core_pmus=("cpu",))

TASK_CLOCK = parse_event("task-clock")
CYCLES = parse_event("cycles")
SERVER = discover_pmus(FIXTURES / "server")
ENERGY = parse_event("power/energy-pkg/", SERVER)


def make_proc(tmp_path: Path, *, paranoid: str = "2", cap_eff: str = "0000000000000000", seccomp: str = "0",
              flags: str = "fpu vme sse2") -> Path:  # fmt: skip
    proc = tmp_path / "proc"
    (proc / "sys" / "kernel").mkdir(parents=True)
    (proc / "self").mkdir()
    (proc / "sys" / "kernel" / "perf_event_paranoid").write_text(paranoid + "\n")
    (proc / "self" / "status").write_text(
        f"Name:\tpython3\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\nSeccomp:\t{seccomp}\n"
    )
    (proc / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n\n")
    return proc


def test_context_from_fixture_proc(tmp_path: Path) -> None:
    perfmon_only = f"{1 << CAP_PERFMON:016x}"
    proc = make_proc(tmp_path, paranoid="3", cap_eff=perfmon_only, seccomp="2", flags="fpu hypervisor sse")
    ctx = Context.gather(sysfs_root=FIXTURES / "hybrid", proc_root=proc)
    assert ctx.paranoid == 3
    assert ctx.cap_perfmon and not ctx.cap_sys_admin and ctx.privileged
    assert ctx.seccomp == 2 and ctx.hypervisor
    assert ctx.core_pmus == ("cpu_atom", "cpu_core")
    assert "power" in ctx.pmus
    admin = make_proc(tmp_path / "b", cap_eff=f"{1 << CAP_SYS_ADMIN:016x}")
    assert Context.gather(sysfs_root=FIXTURES / "vm", proc_root=admin).cap_sys_admin
    assert CAP_PERFMON == 38 and CAP_SYS_ADMIN == 21


def test_context_tolerates_missing_and_garbage(tmp_path: Path) -> None:
    proc = make_proc(tmp_path, paranoid="lots", cap_eff="zz")
    ctx = Context.gather(sysfs_root=tmp_path, proc_root=proc)
    assert ctx.paranoid is None and ctx.cap_eff is None and not ctx.privileged
    empty = Context.gather(sysfs_root=tmp_path / "none", proc_root=tmp_path / "none")
    assert empty.paranoid is None and empty.pmus == () and not empty.hypervisor


def test_hypervisor_detection(tmp_path: Path) -> None:
    assert detect_hypervisor(make_proc(tmp_path, flags="fpu hypervisor"), tmp_path)
    assert not detect_hypervisor(make_proc(tmp_path / "b", flags="fpu vmx"), tmp_path / "b")
    xen = tmp_path / "xen"
    (xen / "hypervisor").mkdir(parents=True)
    (xen / "hypervisor" / "type").write_text("xen\n")
    assert detect_hypervisor(tmp_path / "nothing", xen)


def test_eacces_system_wide() -> None:
    reason, hint = explain(errno.EACCES, TASK_CLOCK, "system-wide", context=UNPRIV)
    assert "kernel.perf_event_paranoid is 2" in reason
    assert "neither CAP_PERFMON nor CAP_SYS_ADMIN" in reason
    assert "sysctl -w kernel.perf_event_paranoid=0" in hint
    assert "AmbientCapabilities=CAP_PERFMON" in hint
    assert "--cap-add PERFMON" in hint


def test_eacces_process_kernel_mode_and_paranoid_3() -> None:
    reason, hint = explain(errno.EACCES, TASK_CLOCK, "process", context=UNPRIV)
    assert "including kernel mode" in reason and "`:u`" in hint
    assert "sysctl -w kernel.perf_event_paranoid=1" in hint
    reason, hint = explain(errno.EACCES, TASK_CLOCK.with_user_only(), "process", context=DEBIAN3)
    assert "forbids perf_event_open for unprivileged users entirely" in reason
    assert "sysctl -w kernel.perf_event_paranoid=2" in hint
    reason, hint = explain(errno.EACCES, TASK_CLOCK.with_user_only(), "process", context=UNPRIV, pid=1)
    assert "process 1" in reason and "another user" in reason


def test_eperm_seccomp_vs_lsm() -> None:
    reason, hint = explain(errno.EPERM, TASK_CLOCK, "system-wide", context=CONTAINER)
    assert "seccomp filter" in reason and "Docker" in reason
    assert "--cap-add PERFMON" in hint and "--security-opt seccomp=" in hint
    reason, hint = explain(errno.EPERM, TASK_CLOCK, "system-wide", context=HOST)
    assert "SELinux" in reason and "seccomp" not in reason


def test_enoent_no_hardware_pmu() -> None:
    reason, hint = explain(errno.ENOENT, CYCLES, "system-wide", context=VM_NO_PMU)
    assert reason.startswith("no hardware PMU")
    assert "virtual machine" in reason
    assert "-cpu host" in hint and "software events" in hint
    reason, _ = explain(errno.ENOENT, CYCLES, "system-wide", context=HOST)
    assert "not supported by this CPU's PMU (cpu)" in reason
    reason, _ = explain(errno.ENOENT, ENERGY, "system-wide", context=UNPRIV)
    assert "no PMU named power" in reason


def test_uncore_per_process() -> None:
    for code in (errno.EINVAL, errno.EOPNOTSUPP):
        reason, hint = explain(code, ENERGY, "process", context=HOST)
        assert "socket-wide PMU" in reason and "system-wide" in hint


@pytest.mark.parametrize(
    ("code", "needle_reason", "needle_hint"),
    [
        (errno.EOPNOTSUPP, "does not support", "system-wide"),
        (errno.EINVAL, "rejected the attributes", "format"),
        (errno.ENODEV, "offline", "/sys/devices/system/cpu/online"),
        (errno.EBUSY, "exclusively", "nmi_watchdog=0"),
        (errno.E2BIG, "older than", "upgrade the kernel"),
        (errno.ESRCH, "does not exist", "ps -p"),
        (errno.ENOSYS, "CONFIG_PERF_EVENTS", "CONFIG_PERF_EVENTS=y"),
        (errno.EBADF, "not valid", "cgroup"),
        (errno.ENOSPC, "no room", "fewer"),
        (errno.ENFILE, "file table is full", "fs.file-max"),
        (errno.EIO, "Input/output error", "perf_event_open(2)"),
    ],
)
def test_other_errnos(code: int, needle_reason: str, needle_hint: str) -> None:
    reason, hint = explain(code, CYCLES, "system-wide", context=HOST)
    assert needle_reason in reason
    assert needle_hint in hint


def test_emfile_names_the_limit_and_the_fix() -> None:
    ctx = Context(nofile=(64, 4096))
    reason, hint = explain(errno.EMFILE, TASK_CLOCK, "system-wide", context=ctx, needed_fds=300)
    assert "300 descriptors are needed" in reason and "RLIMIT_NOFILE allows 64" in reason
    assert "ulimit -n 4096" in hint and "LimitNOFILE=4096" in hint


def test_exclusion_not_supported() -> None:
    reason, hint = explain(errno.EOPNOTSUPP, parse_event("cycles:u"), "system-wide", context=HOST)
    assert "cannot filter by privilege level" in reason and "drop the modifier" in hint


def test_explain_accepts_a_plain_name() -> None:
    reason, _ = explain(errno.EACCES, "my-event", "cgroup", context=UNPRIV)
    assert reason.startswith("cgroup counting of my-event")


def test_probe_against_fake_host_with_pmu(tmp_path: Path) -> None:
    """Fake kernel standing in for a bare-metal host at paranoid 2 for an unprivileged user: system-wide
    refused, own process only with :u; the power PMU is socket-wide."""

    def refuse(attr: _abi.PerfEventAttr, pid: int, cpu: int) -> int | None:
        if pid == -1:
            return errno.EACCES
        return None if attr.exclude_kernel and attr.exclude_hv else errno.EACCES

    kernel = FakeKernel(refuse=refuse)
    proc = make_proc(tmp_path)
    report = probe(
        ["cycles", "task-clock", "power/energy-pkg/", "bogus-event"],
        sysfs_root=FIXTURES / "server",
        proc_root=proc,
        syscalls=kernel,
    )
    assert report.paranoid == 2 and report.paranoid_meaning is not None
    assert "user-space part" in report.paranoid_meaning
    assert report.capabilities == {"CAP_PERFMON": False, "CAP_SYS_ADMIN": False}
    assert report.core_pmus == ["cpu"] and report.hardware_available
    assert report.pmus["power"] == 11
    by = {e.event: e for e in report.events}
    assert not by["cycles"].ok and by["cycles"].error == "EACCES"
    assert by["cycles"].user_only and not by["cycles"].process
    assert "perf_event_paranoid" in (by["cycles"].reason or "")
    assert by["power/energy-pkg/"].error == "EACCES" and not by["power/energy-pkg/"].user_only
    assert by["bogus-event"].errno is None and "unknown event" in (by["bogus-event"].reason or "")
    assert kernel.open_fds == set()
    assert json.loads(json.dumps(report.as_dict()))["events"][0]["event"] == "cycles"


def test_probe_this_machine() -> None:
    """For real, as root: software events open system-wide; hardware events open only where a core PMU
    exists, and otherwise carry the "no hardware PMU" reason."""
    require_root()
    report = probe()
    d = report.as_dict()
    assert d["syscall"] == _abi.syscall_number()
    assert d["kernel"] == os.uname().release
    assert d["capabilities"]["CAP_SYS_ADMIN"] is True
    assert "software" in d["pmus"]
    by = {e["event"]: e for e in d["events"]}
    for sw in (
        "task-clock",
        "cpu-clock",
        "context-switches",
        "cpu-migrations",
        "page-faults",
        "major-faults",
    ):
        assert by[sw]["ok"] is True, by[sw]
    has_pmu = bool(core_pmus(discover_pmus()))
    assert d["hardware_available"] is has_pmu
    if not has_pmu:
        for hw in ("cycles", "instructions", "LLC-loads", "dTLB-load-misses"):
            assert by[hw]["ok"] is False and by[hw]["error"] == "ENOENT"
            assert by[hw]["reason"].startswith("no hardware PMU")


def test_eacces_despite_capabilities_points_at_the_lsm() -> None:
    ctx = Context(paranoid=2, cap_eff=1 << CAP_PERFMON)
    reason, hint = explain(errno.EACCES, TASK_CLOCK, "system-wide", context=ctx)
    assert "although this process has CAP_PERFMON" in reason and "SELinux" in reason
    assert "audit log" in hint
