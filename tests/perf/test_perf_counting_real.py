"""Counting through the real perf_event_open on this kernel: software events, real privilege drops, a real
seccomp filter, a real RLIMIT_NOFILE. Nothing here is faked; tests that need root say so via
``require_root`` (skip locally, fail under PERFPULSE_STRICT=1).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import require, require_root

from perfpulse.perf import _abi
from perfpulse.perf.counting import Counters, CountingError, LinuxSyscalls
from perfpulse.perf.events import EventSpec, parse_event
from perfpulse.perf.pmu import core_pmus, discover_pmus

SRC = Path(__file__).resolve().parents[2] / "src"
PAGE = os.sysconf("SC_PAGE_SIZE")


def touch_pages(n: int) -> mmap.mmap:
    """Fault in ``n`` fresh anonymous pages (one minor fault each; a fresh mapping, because malloc would
    hand back pages an earlier test already faulted in) and keep them alive."""
    buf = mmap.mmap(-1, n * PAGE)
    for i in range(0, n * PAGE, PAGE):
        buf[i] = 1
    return buf


def fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def run_child(
    code: str,
    *argv: str,
    python: str | None = None,
    prefix: list[str] | None = None,
    pythonpath: Path = SRC,
) -> dict:
    """Run ``code`` in a fresh interpreter (optionally under ``prefix``, e.g. setpriv) and return the JSON
    object it prints on its last line."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(pythonpath), "LANG": "C.UTF-8"}
    cmd = [*(prefix or []), python or sys.executable, "-c", textwrap.dedent(code), *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, cwd="/")
    assert proc.returncode == 0, f"child failed ({proc.returncode}): {proc.stderr}"
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


# -- system-wide, as root -----------------------------------------------------------------------------------
def test_system_wide_members_count() -> None:
    """The DESIGN.md opening rule, for real: page-faults and context-switches as *members* of a
    task-clock group, system-wide on every online CPU, count what this process does."""
    require_root()
    with Counters.system_wide(["task-clock", "page-faults", "context-switches"]) as c:
        assert c.groups == [["task-clock", "page-faults", "context-switches"]]
        assert c.failed == {}
        before = c.read()
        keep = touch_pages(4000)
        time.sleep(0.01)
        after = c.read()
        delta = after.delta(before)
        cpus = set(after["task-clock"])
        assert cpus == set(c.read()["page-faults"]) and len(cpus) >= 1
        faults = after.total(delta["page-faults"])
        assert faults.value is not None and faults.value >= 4000
        assert faults.ratio == pytest.approx(1.0)
        switches = after.total(delta["context-switches"])
        assert switches.raw > 0  # the sleep switched at least once
        clock = after.total(delta["task-clock"])
        assert clock.value is not None and clock.value > 0
        for per_cpu in delta.values():
            for s in per_cpu.values():
                assert s.enabled > 0 and s.running == s.enabled
        del keep


def test_system_wide_explicit_cpus_and_disable() -> None:
    require_root()
    with Counters.system_wide(["cpu-clock", "minor-faults"], cpus=[0]) as c:
        assert set(c.read()["cpu-clock"]) == {0}
        c.disable()
        a = c.read()
        touch_pages(500)
        b = c.read()
        # Disabled: neither counts nor enabled time move.
        assert b["minor-faults"][0] == a["minor-faults"][0]
        c.enable()
        time.sleep(0.005)
        assert c.read()["cpu-clock"][0].value > b["cpu-clock"][0].value


def test_hardware_events_here() -> None:
    """On a machine without a core PMU (this VM) hardware events fail with ENOENT "no hardware PMU";
    where a PMU exists (a CI host on bare metal) they count."""
    require_root()
    has_pmu = bool(core_pmus(discover_pmus()))
    if not has_pmu:
        with pytest.raises(CountingError) as info:
            Counters.system_wide(["cycles", "instructions", "LLC-load-misses"])
        err = info.value
        assert err.errno == errno.ENOENT
        assert [e.event for e in err.errors] == ["cycles", "instructions", "LLC-load-misses"]
        assert all(e.reason.startswith("no hardware PMU") for e in err.errors)
        assert "software events" in err.hint
        with Counters.system_wide(["cycles", "task-clock"]) as c:
            assert c.failed["cycles"].reason.startswith("no hardware PMU")
            assert [s.name for s in c.events] == ["task-clock"]
    else:
        with Counters.system_wide(["cycles", "instructions"]) as c:
            a = c.read()
            time.sleep(0.01)
            d = c.read().delta(a)
            assert sum(s.raw for s in d["cycles"].values()) > 0


# -- process and cgroup scopes ------------------------------------------------------------------------------
def test_process_scope_self_group_read() -> None:
    require_root()
    with Counters.process(["task-clock", "page-faults"], 0, inherit=False) as c:
        a = c.read()
        keep = touch_pages(3000)
        b = c.read()
        d = b.delta(a)
        assert set(d["page-faults"]) == {-1}
        assert d["page-faults"][-1].raw >= 3000
        assert d["task-clock"][-1].value is not None and d["task-clock"][-1].value > 0
        del keep


def test_process_scope_inherit_counts_children() -> None:
    """inherit=True (per-event reads): a child forked after the open is counted with its parent."""
    require_root()
    with Counters.process(["page-faults", "task-clock"], os.getpid(), inherit=True) as c:
        a = c.read()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                touch_pages(5000)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        d = c.read().delta(a)
        assert d["page-faults"][-1].raw >= 5000


def test_process_scope_enable_on_exec() -> None:
    """Counters on a child that has not exec'd yet stay off until the exec (what ``stat -- CMD`` needs),
    then count the new program."""
    require_root()
    script = (
        "import mmap\nb = mmap.mmap(-1, 4000 * mmap.PAGESIZE)\n"
        "for i in range(0, len(b), mmap.PAGESIZE): b[i] = 1\n"
    )
    with subprocess.Popen(
        ["/bin/sh", "-c", 'read go; exec "$0" -c "$1"', sys.executable, script], stdin=subprocess.PIPE
    ) as child:
        assert child.stdin is not None
        with Counters.process(["page-faults", "task-clock"], child.pid, enable_on_exec=True) as c:
            idle = c.read()
            assert idle["page-faults"][-1] == (0, 0, 0)
            child.stdin.write(b"go\n")
            child.stdin.close()
            assert child.wait(timeout=30) == 0
            d = c.read().delta(idle)
            assert d["page-faults"][-1].raw >= 4000
            assert d["task-clock"][-1].value is not None and d["task-clock"][-1].ratio == 1.0


def test_process_scope_missing_pid() -> None:
    require_root()
    proc = subprocess.Popen(["true"])
    proc.wait()
    with pytest.raises(CountingError) as info:
        Counters.process(["task-clock"], proc.pid, inherit=False)
    assert info.value.errno == errno.ESRCH
    assert "does not exist" in info.value.reason


def _cgroup2_mount() -> Path | None:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "cgroup2":
                return Path(left.split()[4])
    return None


@contextlib.contextmanager
def scratch_cgroup() -> Iterator[Path]:
    mount = _cgroup2_mount()
    require(mount is not None and os.access(mount, os.W_OK), "needs a writable cgroup2 mount")
    assert mount is not None
    path = mount / f"perfpulse-test-{os.getpid()}"
    path.mkdir()
    try:
        yield path
    finally:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.05)


def test_cgroup_scope_counts_only_its_tasks() -> None:
    """A real cgroup v2 directory with one child in it: its page faults are counted, ours are not."""
    require_root()
    with scratch_cgroup() as cg:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, mmap\nsys.stdin.readline()\nb = bytearray(6000 * mmap.PAGESIZE)\n"
                "for i in range(0, len(b), mmap.PAGESIZE): b[i] = 1\n",
            ],
            stdin=subprocess.PIPE,
        )
        try:
            (cg / "cgroup.procs").write_text(str(child.pid))
            with Counters.cgroup(["page-faults", "task-clock"], cg) as c:
                a = c.read()
                mine = touch_pages(3000)  # not in the cgroup: must not show up
                quiet = c.read().delta(a)
                assert c.read().total(quiet["page-faults"]).raw < 1000
                assert child.stdin is not None
                child.stdin.write(b"go\n")
                child.stdin.flush()
                child.wait(timeout=30)
                d = c.read().delta(a)
                faults = c.read().total(d["page-faults"])
                assert faults.raw >= 6000
                assert set(d["page-faults"]) == set(c.read()["task-clock"])
                del mine
        finally:
            child.kill()
            child.wait()
            assert child.stdin is not None
            child.stdin.close()


# -- descriptors ----------------------------------------------------------------------------------------
def test_ten_thousand_cycles_leave_no_descriptor_behind() -> None:
    """10,000 open/read/close cycles (two software events, process scope on this process, user-space
    only so no privilege is needed) and 500 cycles through the failure paths: /proc/self/fd unchanged."""
    specs = [parse_event("task-clock:u"), parse_event("page-faults:u")]
    before = fds()
    for _ in range(10_000):
        c = Counters.process(specs, 0, inherit=False)
        c.read()
        c.close()
    assert fds() == before
    # Events no kernel has (a PMU type nobody registered): ENOENT on every machine.
    bad = [EventSpec("bogus-a", type=0x7FFF0000, config=0), EventSpec("bogus-b", type=0x7FFF0001, config=1)]
    for _ in range(250):
        with Counters.process([*specs, *bad], 0, inherit=False) as c:  # some fail, the rest count
            assert sorted(c.failed) == ["bogus-a", "bogus-b"]
            c.read()
        with pytest.raises(CountingError):
            Counters.process(bad, 0, inherit=False)
    assert fds() == before


def test_emfile_in_a_child_with_low_rlimit() -> None:
    """RLIMIT_NOFILE lowered for real in a child: a clear EMFILE error and every descriptor closed."""
    result = run_child(
        """
        import json, os, resource
        from perfpulse.perf import Counters, CountingError
        names = ["task-clock:u", "page-faults:u", "context-switches:u", "cpu-migrations:u",
                 "minor-faults:u", "major-faults:u", "alignment-faults:u", "emulation-faults:u"] * 1
        before = sorted(os.listdir("/proc/self/fd"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(before) + 4, hard))
        out = {}
        try:
            Counters.process(names, 0, inherit=False)
        except CountingError as exc:
            out = {"errno": exc.errno, "reason": exc.reason, "hint": exc.hint}
        out["leak"] = sorted(os.listdir("/proc/self/fd")) != before
        print(json.dumps(out))
        """
    )
    assert result["errno"] == errno.EMFILE
    assert "out of file descriptors" in result["reason"]
    assert "8 descriptors are needed" in result["reason"]
    assert "ulimit -n" in result["hint"]
    assert result["leak"] is False


# -- privilege: a real drop to nobody, a real seccomp filter ---------------------------------------------
@pytest.fixture
def paranoid_2() -> Iterator[None]:
    """perf_event_paranoid 2 (this VM's setting, the kernel default) for the test; restored after."""
    require_root()
    path = Path("/proc/sys/kernel/perf_event_paranoid")
    old = path.read_text().strip()
    if old != "2":
        try:
            path.write_text("2")
        except OSError as exc:
            require(False, f"cannot set perf_event_paranoid to 2: {exc}")
    try:
        yield
    finally:
        if old != "2":
            path.write_text(old)


@pytest.fixture(scope="module")
def nobody_tree() -> Iterator[Path]:
    """A copy of the stdlib-only ``perfpulse.perf`` in a world-readable directory: the checkout may live
    where ``nobody`` cannot read (under /root, say), and the venv's interpreter may not be executable by
    it, so the child runs Debian's /usr/bin/python3 on this copy."""
    base = Path(tempfile.mkdtemp(prefix="perfpulse-nobody-"))
    try:
        base.chmod(0o755)
        pkg = base / "perfpulse"
        pkg.mkdir()
        shutil.copy2(SRC / "perfpulse" / "__init__.py", pkg / "__init__.py")
        shutil.copytree(
            SRC / "perfpulse" / "perf", pkg / "perf", ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in [pkg, *pkg.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _nobody_prefix(tree: Path) -> list[str]:
    require_root()
    setpriv = shutil.which("setpriv")
    require(setpriv, "needs setpriv (util-linux)")
    require(os.access("/usr/bin/python3", os.X_OK), "needs the system /usr/bin/python3")
    assert setpriv is not None
    prefix = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    check = subprocess.run(
        [*prefix, "/usr/bin/python3", "-c", "import perfpulse.perf; print('ok')"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        cwd="/",
        timeout=30,
    )
    require(check.stdout.strip() == "ok", f"nobody cannot import perfpulse.perf from {tree}: {check.stderr}")
    return prefix


def test_nobody_system_wide_fails_with_eacces_reason(paranoid_2: None, nobody_tree: Path) -> None:
    """A real child dropped to nobody (setpriv) at paranoid 2: system-wide counting is refused."""
    result = run_child(
        """
        import json
        from perfpulse.perf import Counters, CountingError
        try:
            Counters.system_wide(["task-clock", "page-faults"])
            print(json.dumps({"opened": True}))
        except CountingError as exc:
            print(json.dumps({"errno": exc.errno, "reason": exc.reason, "hint": exc.hint,
                              "events": [e.event for e in exc.errors]}))
        """,
        python="/usr/bin/python3",
        prefix=_nobody_prefix(nobody_tree),
        pythonpath=nobody_tree,
    )
    assert result.get("opened") is None
    assert result["errno"] == errno.EACCES
    assert result["events"] == ["task-clock", "page-faults"]
    assert result["reason"] == (
        "system-wide counting of task-clock is not permitted: it needs kernel.perf_event_paranoid <= 0 "
        "or CAP_PERFMON; kernel.perf_event_paranoid is 2 and this process has neither CAP_PERFMON nor "
        "CAP_SYS_ADMIN"
    )
    assert "sysctl -w kernel.perf_event_paranoid=0" in result["hint"]
    assert "AmbientCapabilities=CAP_PERFMON" in result["hint"]


def test_nobody_own_process_only_user_space(paranoid_2: None, nobody_tree: Path) -> None:
    """As nobody at paranoid 2: own-process counting including the kernel is refused (EACCES), the same
    events with exclude_kernel+exclude_hv (``:u``) count, and the fallback picks that by itself."""
    result = run_child(
        """
        import json
        from perfpulse.perf import Counters, CountingError
        out = {}
        try:
            Counters.process(["task-clock", "page-faults"], 0, inherit=False)
        except CountingError as exc:
            out["kernel"] = {"errno": exc.errno, "reason": exc.reason, "hint": exc.hint}
        with Counters.process(["task-clock:u", "page-faults:u"], 0, inherit=False) as c:
            a = c.read()
            x = sum(i * i for i in range(200000))
            d = c.read().delta(a)
            out["user_clock"] = d["task-clock:u"][-1].raw
        with Counters.process(["task-clock", "page-faults"], 0, user_only_fallback=True) as c:
            out["fallback"] = sorted(c.user_only)
            out["excl"] = [(s.exclude_kernel, s.exclude_hv) for s in c.events]
        print(json.dumps(out))
        """,
        python="/usr/bin/python3",
        prefix=_nobody_prefix(nobody_tree),
        pythonpath=nobody_tree,
    )
    assert result["kernel"]["errno"] == errno.EACCES
    assert "including kernel mode is not permitted" in result["kernel"]["reason"]
    assert "`:u`" in result["kernel"]["hint"]
    assert result["user_clock"] > 0
    assert result["fallback"] == ["page-faults", "task-clock"]


SECCOMP_CHILD = """
import ctypes, ctypes.util, errno, json, sys
from perfpulse.perf import Counters, CountingError, probe
lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000 | errno.EPERM  # what Docker's default profile answers
ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
assert ctx
assert lib.seccomp_rule_add(ctx, SCMP_ACT_ERRNO, int(sys.argv[1]), 0) == 0
assert lib.seccomp_load(ctx) == 0
out = {}
try:
    Counters.system_wide(["task-clock"])
except CountingError as exc:
    out = {"errno": exc.errno, "reason": exc.reason, "hint": exc.hint}
report = probe(["task-clock"])
out["probe"] = report.events[0].as_dict()
out["seccomp"] = report.seccomp
print(json.dumps(out))
"""


def test_seccomp_filter_gives_eperm_reason() -> None:
    """A real seccomp filter (libseccomp via ctypes in a child) answering perf_event_open with EPERM."""
    require(ctypes.util.find_library("seccomp"), "needs libseccomp2")
    result = run_child(SECCOMP_CHILD, str(_abi.syscall_number()))
    assert result["errno"] == errno.EPERM
    assert "blocked by a seccomp filter" in result["reason"]
    assert "--cap-add PERFMON" in result["hint"]
    assert "seccomp=" in result["hint"]
    assert result["seccomp"] == 2
    assert result["probe"]["ok"] is False and result["probe"]["error"] == "EPERM"
    assert result["probe"]["process"] is False and result["probe"]["user_only"] is False


# -- the raw layer -------------------------------------------------------------------------------------
def test_kernel_writes_back_its_size_on_e2big() -> None:
    """The E2BIG handshake counting relies on, against the real kernel: an oversized attr.size (more than a
    page) is refused and the kernel's own struct size is written back."""
    sc = LinuxSyscalls()
    attr = parse_event("task-clock:u").to_attr()
    attr.size = 8192
    with pytest.raises(OSError) as info:
        sc.perf_event_open(attr, 0, -1, -1, _abi.PERF_FLAG_FD_CLOEXEC)
    assert info.value.errno == errno.E2BIG
    assert attr.size >= _abi.PERF_ATTR_SIZE_VER7  # 136 on 6.3+ kernels, 128 on 5.13-6.2


def test_ioc_id_matches_the_read_id() -> None:
    sc = LinuxSyscalls()
    attr = parse_event("task-clock:u").to_attr()
    attr.read_format = _abi.PERF_FORMAT_ID
    fd = sc.perf_event_open(attr, 0, -1, -1, _abi.PERF_FLAG_FD_CLOEXEC)
    try:
        out = ctypes.c_uint64()
        assert sc.ioctl(fd, _abi.PERF_EVENT_IOC_ID, ctypes.addressof(out)) == 0
        _value, ident = __import__("struct").unpack("=2Q", sc.read(fd, 16))
        assert ident == out.value != 0
    finally:
        sc.close(fd)
    with pytest.raises(OSError) as info:
        sc.ioctl(fd, _abi.PERF_EVENT_IOC_ENABLE, 0)
    assert info.value.errno == errno.EBADF
