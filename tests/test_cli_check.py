"""`perfpulse check`: real probes as root, as nobody (setpriv) and under a seccomp filter that denies
perf_event_open, the way a container's default profile does."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import require, require_root, require_tool

from perfpulse.commands.check import exit_status

CHECK = [sys.executable, "-m", "perfpulse.cli", "check"]
NO_PMU = not Path("/sys/bus/event_source/devices/cpu").exists()

# Installs a seccomp filter failing perf_event_open with EPERM, then execs argv[1:] (real, no mocks).
SECCOMP_LAUNCHER = r"""
import ctypes, os, struct, sys
from perfpulse.perf._abi import syscall_number
nr = syscall_number()
prog = b"".join(struct.pack("=HBBI", *ins) for ins in (
    (0x20, 0, 0, 0),                       # ld [0]: the syscall number
    (0x15, 0, 1, nr),                      # jeq perf_event_open ? next : allow
    (0x06, 0, 0, 0x00050000 | 1),          # ret ERRNO(EPERM)
    (0x06, 0, 0, 0x7FFF0000),              # ret ALLOW
))
buf = ctypes.create_string_buffer(prog, len(prog))
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
fprog = Fprog(len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0, ctypes.get_errno()  # PR_SET_SECCOMP, FILTER
os.execv(sys.argv[1], sys.argv[1:])
"""


PARANOID = Path("/proc/sys/kernel/perf_event_paranoid")


@contextlib.contextmanager
def paranoid_level(level: int) -> Iterator[None]:
    """Run with kernel.perf_event_paranoid at ``level`` (the kernel default, 2; Debian kernels boot with 3),
    putting the old value back afterwards."""
    old = PARANOID.read_text().strip()
    if old != str(level):
        require(os.access(PARANOID, os.W_OK), f"needs kernel.perf_event_paranoid = {level} (it is {old})")
        PARANOID.write_text(str(level))
    try:
        yield
    finally:
        if old != str(level):
            PARANOID.write_text(old)


def _check(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, *CHECK, *args], capture_output=True, text=True, timeout=60, cwd="/")


def _nobody() -> tuple[str, ...]:
    setpriv = require_tool("setpriv")
    return (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all")


def test_exit_status_rules() -> None:
    def ev(ok: bool, process: bool = False, user_only: bool = False) -> dict[str, Any]:
        return {"ok": ok, "process": process, "user_only": user_only}

    assert exit_status({"events": [ev(True), ev(True)]}) == 0
    assert exit_status({"events": [ev(True), ev(False)]}) == 1
    assert exit_status({"events": [ev(False, user_only=True)]}) == 1  # `stat -- CMD` still counts, as :u
    assert exit_status({"events": [ev(False), ev(False)]}) == 2


def test_as_root_reports_and_advises() -> None:
    require_root()
    done = _check()
    paranoid = Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip()
    assert f"kernel.perf_event_paranoid = {paranoid}:" in done.stdout
    assert "CAP_PERFMON yes" in done.stdout
    assert any(line.split()[:3] == ["cpu-clock", "yes", "yes"] for line in done.stdout.splitlines())
    if NO_PMU:
        assert done.returncode == 1, done.stdout  # software events count, hardware ones do not
        assert "no hardware PMU" in done.stdout and "-cpu host" in done.stdout
        assert any(line.split()[:4] == ["cycles", "no", "no", "ENOENT"] for line in done.stdout.splitlines())
    assert "Traceback" not in done.stderr
    assert _check("-e", "cpu-clock,page-faults,context-switches").returncode == 0


def test_json_matches_the_exit_status() -> None:
    require_root()
    done = _check("--json")
    doc = json.loads(done.stdout)
    assert doc["status"] == done.returncode
    by = {e["event"]: e for e in doc["events"]}
    assert by["cpu-clock"]["ok"] is True and by["task-clock"]["ok"] is True
    if NO_PMU:
        assert by["instructions"]["error"] == "ENOENT" and by["instructions"]["reason"].startswith(
            "no hardware PMU"
        )
        assert doc["hardware_available"] is False and any("virtual PMU" in tip for tip in doc["advice"])
    unknown = json.loads(_check("--json", "-e", "cpu-clock,not-an-event").stdout)
    assert "unknown event 'not-an-event'" in unknown["events"][1]["reason"]


def test_unprivileged_user_gets_the_privilege_advice() -> None:
    """Real: nobody at paranoid >= 1 cannot count system-wide; own processes still count (maybe :u)."""
    require_root()
    with paranoid_level(2):
        done = _check("--json", "-e", "cpu-clock,page-faults", prefix=_nobody())
    doc = json.loads(done.stdout)
    assert done.returncode == 1 and doc["status"] == 1
    for event in doc["events"]:
        assert event["ok"] is False and event["error"] == "EACCES"
        assert event["process"] or event["user_only"]
    advice = "\n".join(doc["advice"])
    assert "AmbientCapabilities=CAP_PERFMON" in advice and "kernel.perf_event_paranoid=0" in advice


def test_seccomp_denial_means_nothing_counts() -> None:
    """Real: a seccomp filter failing perf_event_open with EPERM, as a container runtime's would."""
    require_root()
    launcher = [sys.executable, "-c", SECCOMP_LAUNCHER, sys.executable, *CHECK[1:]]
    done = subprocess.run(
        [*launcher, "--json", "-e", "cpu-clock,page-faults"], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    doc = json.loads(done.stdout)
    assert doc["seccomp"] == 2 and doc["status"] == 2
    assert all(e["error"] == "EPERM" and not e["process"] and not e["user_only"] for e in doc["events"])
    assert any("seccomp" in tip for tip in doc["advice"])
    text = subprocess.run(launcher, capture_output=True, text=True, timeout=60)
    assert text.returncode == 2 and "seccomp filter" in text.stdout and "EPERM" in text.stdout
