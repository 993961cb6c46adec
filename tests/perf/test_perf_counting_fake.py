"""The hardware path of counting, driven through a fake kernel (tests/perf/perf_fakes.py).

This VM has no hardware PMU, so group limits, multiplexing, hybrid core PMUs, uncore cpumasks and E2BIG
cannot happen here for real: every test in this file injects ``FakeKernel`` as ``syscalls=`` and says
which kernel behaviour it stands in for. The real-syscall tests are in test_perf_counting_real.py.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from perf_fakes import FakeKernel, SwappedIdKernel

from perfpulse.perf import _abi
from perfpulse.perf.counting import (
    GROUP_READ_FORMAT,
    SINGLE_READ_FORMAT,
    Counters,
    CountingError,
    RawCount,
    Reading,
    Scaled,
)
from perfpulse.perf.events import parse_event
from perfpulse.perf.pmu import discover_pmus
from perfpulse.perf.probe import Context

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pmu"
SERVER_ROOT = FIXTURES / "server"
HYBRID_ROOT = FIXTURES / "hybrid"
VM_ROOT = FIXTURES / "vm"
SERVER = discover_pmus(SERVER_ROOT)
HYBRID = discover_pmus(HYBRID_ROOT)
VM = discover_pmus(VM_ROOT)

# An unprivileged caller at paranoid 2 on a VM, whatever user runs the tests (explain() reads it).
UNPRIVILEGED = Context(paranoid=2, cap_eff=0, seccomp=0, hypervisor=True, pmus=tuple(VM), core_pmus=())

HW = ["cycles", "instructions", "branches", "branch-misses", "cache-references", "cache-misses"]
SW = ["task-clock", "page-faults", "context-switches"]


def _open_sw(kernel: FakeKernel, events: list[str], cpus: tuple[int, ...] = (0, 1)) -> Counters:
    return Counters.system_wide(events, cpus=cpus, syscalls=kernel, pmus=SERVER, sysfs_root=SERVER_ROOT)


def test_opening_rule_leader_disabled_members_enabled_enable_on_leader() -> None:
    """Fake kernel standing in for a PMU: checks the attrs and ioctls counting sends."""
    kernel = FakeKernel()
    c = _open_sw(kernel, ["cycles", "instructions", "task-clock", "page-faults"])
    leaders = {ev.fd for ev in kernel.all_events if ev.group_fd == -1}
    for ev in kernel.all_events:
        assert ev.disabled == (1 if ev.fd in leaders else 0)
        assert ev.pinned == 0 and ev.inherit == 0
        assert ev.read_format == GROUP_READ_FORMAT
        assert ev.flags == _abi.PERF_FLAG_FD_CLOEXEC
        assert ev.pid == -1 and ev.cpu in (0, 1)
    # One ENABLE per leader, arg 0 (no PERF_IOC_FLAG_GROUP), and nothing on members.
    assert sorted(fd for fd, _req, _arg in kernel.ioctls) == sorted(leaders)
    assert {(req, arg) for _fd, req, arg in kernel.ioctls} == {(_abi.PERF_EVENT_IOC_ENABLE, 0)}
    assert len(leaders) == 4  # (hardware, software) x 2 CPUs
    c.disable()
    assert kernel.ioctls[-1][1] == _abi.PERF_EVENT_IOC_DISABLE
    c.close()
    assert kernel.open_fds == set()


def test_grouping_splits_hardware_and_keeps_software_apart() -> None:
    """Fake kernel with 4 counters: 6 hardware events become groups of 4 and 2, software its own group."""
    kernel = FakeKernel(counters=4)
    with _open_sw(kernel, HW + SW, cpus=(0, 1, 2)) as c:
        assert c.groups == [HW[:4], HW[4:], SW]
        assert [c.group_of(n) for n in HW + SW] == [0, 0, 0, 0, 1, 1, 2, 2, 2]
        assert [s.name for s in c.events] == HW + SW
        assert c.fd_count == 9 * 3
        reading = c.read()
        assert set(reading) == set(HW + SW)
        assert all(set(per_cpu) == {0, 1, 2} for per_cpu in reading.values())


def test_max_group_size_is_configurable() -> None:
    kernel = FakeKernel(counters=8)
    with Counters.system_wide(
        HW, cpus=(0,), syscalls=kernel, pmus=SERVER, sysfs_root=SERVER_ROOT, max_group_size=2
    ) as c:
        assert c.groups == [HW[0:2], HW[2:4], HW[4:6]]


def test_group_that_does_not_fit_is_split_and_retried() -> None:
    """Fake PMU with only 2 counters refuses a third member with EINVAL (as x86 validate_group does):
    the group is split at that member on every CPU and nothing opened for the failed attempt leaks."""
    kernel = FakeKernel(counters=2)
    with _open_sw(kernel, HW[:4], cpus=(0, 1)) as c:
        assert c.groups == [HW[:2], HW[2:4]]
        assert c.failed == {}
        assert c.group_of("instructions") == 0 and c.group_of("branches") == 1
        assert len(kernel.open_fds) == 8
        refused = [call for call in kernel.open_calls if call["group_fd"] != -1]
        assert refused  # the first attempt really went to the kernel
    assert kernel.open_fds == set()


def test_multiplexing_scaling_and_ratio() -> None:
    """Fake times stand in for a multiplexed PMU: enabled 1000 ns, running 250 ns -> x4, ratio 0.25."""
    kernel = FakeKernel()
    with _open_sw(kernel, ["cycles", "instructions"], cpus=(0,)) as c:
        leader = kernel.find(0, 0)
        member = kernel.find(1, 0)
        first = c.read()
        assert first["cycles"][0] == RawCount(0, 0, 0)
        kernel.set_times(leader.fd, 1000, 250)
        leader.value, member.value = 100, 300
        second = c.read()
        delta = second.delta(first)
        assert delta["cycles"][0] == Scaled(400.0, 100, 1000, 250, 0.25)
        assert delta["instructions"][0] == Scaled(1200.0, 300, 1000, 250, 0.25)
        # Next interval: not scheduled at all -> None ("not counted"), never 0.
        kernel.set_times(leader.fd, 2000, 250)
        third = c.read()
        d3 = third.delta(second)
        assert d3["cycles"][0] == Scaled(None, 0, 1000, 0, 0.0)
        # Fully scheduled interval.
        kernel.set_times(leader.fd, 3000, 1250)
        leader.value = 1100
        d4 = c.read().delta(third)
        assert d4["cycles"][0].value == 1000.0 and d4["cycles"][0].ratio == 1.0


def test_total_sums_cpus_then_scales() -> None:
    d = {
        0: Scaled(200.0, 100, 1000, 500, 0.5),
        1: Scaled(None, 0, 1000, 0, 0.0),
        2: Scaled(300.0, 300, 1000, 1000, 1.0),
    }
    total = Reading.total(d)
    assert (total.raw, total.enabled, total.running) == (400, 3000, 1500)
    assert total.value == pytest.approx(800.0)
    assert total.ratio == pytest.approx(0.5)
    assert Reading.total({0: Scaled(None, 0, 10, 0, 0.0)}).value is None
    assert Reading.total({}).value is None and Reading.total({}).ratio is None


def test_delta_first_read_and_reset() -> None:
    prev = Reading()
    prev["x"] = {0: RawCount(100, 1000, 1000)}
    cur = Reading()
    cur["x"] = {0: RawCount(50, 200, 200), 1: RawCount(10, 20, 10)}
    d = cur.delta(prev)
    assert d["x"][0] == Scaled(50.0, 50, 200, 200, 1.0)  # went backwards: counts since reopen
    assert d["x"][1] == Scaled(20.0, 10, 20, 10, 0.5)  # new CPU: counts since open
    assert cur.delta(None)["x"][0].raw == 50


def test_group_read_is_matched_by_id() -> None:
    """Fake kernel that reports members in reverse order: values still land on the right names."""
    kernel = SwappedIdKernel()
    with _open_sw(kernel, ["cycles", "instructions", "branches"], cpus=(0,)) as c:
        for config, value in ((0, 11), (1, 22), (4, 33)):
            kernel.find(config, 0).value = value
        kernel.set_times(kernel.find(0, 0).fd, 10, 10)
        r = c.read()
        assert (r["cycles"][0].value, r["instructions"][0].value, r["branches"][0].value) == (11, 22, 33)


def test_hybrid_events_open_on_their_core_pmus_cpus_with_extended_type() -> None:
    """Fixture: Alder Lake-like hybrid (cpu_core 0-7 type 4, cpu_atom 8-15 type 10); fake kernel."""
    kernel = FakeKernel()
    with Counters.system_wide(
        ["cycles", "instructions", "task-clock"], syscalls=kernel, pmus=HYBRID, sysfs_root=HYBRID_ROOT
    ) as c:
        names = [s.name for s in c.events]
        assert names == [
            "cpu_atom/cycles/",
            "cpu_core/cycles/",
            "cpu_atom/instructions/",
            "cpu_core/instructions/",
            "task-clock",
        ]
        assert c.group_of("cpu_core/cycles/") == c.group_of("cpu_core/instructions/")
        assert c.group_of("cpu_atom/cycles/") != c.group_of("cpu_core/cycles/")
        by_type: dict[int, set[int]] = {}
        for ev in kernel.all_events:
            if ev.type == _abi.PERF_TYPE_HARDWARE:
                by_type.setdefault(ev.config >> 32, set()).add(ev.cpu)
                assert ev.config & 0xFFFFFFFF in (0, 1)
        assert by_type == {4: set(range(8)), 10: set(range(8, 16))}
        r = c.read()
        assert set(r["cpu_core/cycles/"]) == set(range(8))
        assert set(r["cpu_atom/cycles/"]) == set(range(8, 16))
        assert set(r["task-clock"]) == set(range(16))


def test_uncore_and_rapl_open_on_cpumask_without_exclude_bits() -> None:
    """Fixture: two-socket server (power and uncore_imc_0..3 with cpumask 0,28, 56 CPUs); fake kernel."""
    kernel = FakeKernel()
    with Counters.system_wide(
        ["power/energy-pkg/", "power/energy-ram/", "uncore_imc/cas_count_read/", "cycles"],
        syscalls=kernel,
        pmus=SERVER,
        sysfs_root=SERVER_ROOT,
    ) as c:
        for ev in kernel.all_events:
            if ev.type != _abi.PERF_TYPE_HARDWARE:
                assert ev.cpu in (0, 28)
                assert (ev.exclude_user, ev.exclude_kernel, ev.exclude_hv) == (0, 0, 0)
        cycles_cpus = {ev.cpu for ev in kernel.all_events if ev.type == _abi.PERF_TYPE_HARDWARE}
        assert cycles_cpus == set(range(56))
        assert c.group_of("power/energy-pkg/") == c.group_of("power/energy-ram/")
        imc = [f"uncore_imc_{i}/cas_count_read/" for i in range(4)]
        assert len({c.group_of(n) for n in imc}) == 4  # one group per box: a group is one PMU
        assert c.spec("power/energy-pkg/").unit == "Joules"
        r = c.read()
        assert set(r["power/energy-pkg/"]) == {0, 28}


def test_uncore_uses_cpumask_even_when_cpus_are_restricted() -> None:
    kernel = FakeKernel()
    with Counters.system_wide(
        ["power/energy-pkg/", "task-clock"], cpus=(3,), syscalls=kernel, pmus=SERVER, sysfs_root=SERVER_ROOT
    ) as c:
        assert set(c.read()["power/energy-pkg/"]) == {0, 28}
        assert set(c.read()["task-clock"]) == {3}


def test_process_scope_inherit_reads_each_event() -> None:
    """Fake kernel: process scope with inherit uses per-event reads (no FORMAT_GROUP), cpu -1."""
    kernel = FakeKernel()
    with Counters.process(["task-clock", "page-faults"], 1234, syscalls=kernel, pmus=VM) as c:
        for ev in kernel.all_events:
            assert (ev.pid, ev.cpu, ev.inherit) == (1234, -1, 1)
            assert ev.read_format == SINGLE_READ_FORMAT
        leader = kernel.find(1, -1)
        member = kernel.find(2, -1)
        kernel.set_times(leader.fd, 500, 500)
        leader.value, member.value = 7, 9
        r = c.read()
        assert r["task-clock"] == {-1: RawCount(7, 500, 500)}
        assert r["page-faults"] == {-1: RawCount(9, 500, 500)}
        assert all(size == 32 for _fd, size in kernel.reads)


def test_process_scope_without_inherit_uses_group_reads() -> None:
    kernel = FakeKernel()
    with Counters.process(["task-clock", "page-faults"], 0, inherit=False, syscalls=kernel, pmus=VM):
        assert {ev.read_format for ev in kernel.all_events} == {GROUP_READ_FORMAT}
        assert {ev.inherit for ev in kernel.all_events} == {0}


def test_enable_on_exec_leaves_counters_for_exec() -> None:
    kernel = FakeKernel()
    with Counters.process(["task-clock", "page-faults"], 99, enable_on_exec=True, syscalls=kernel, pmus=VM):
        leader = kernel.find(1, -1)
        assert leader.enable_on_exec == 1 and leader.disabled == 1
        assert kernel.find(2, -1).enable_on_exec == 0
        assert kernel.ioctls == []


def test_cgroup_scope(tmp_path: Path) -> None:
    """Fake kernel: a cgroup directory fd as pid with PERF_FLAG_PID_CGROUP, one group per CPU."""
    kernel = FakeKernel()
    with Counters.cgroup(
        ["task-clock", "cycles"], tmp_path, cpus=(0, 1), syscalls=kernel, pmus=SERVER, sysfs_root=SERVER_ROOT
    ) as c:
        assert {ev.cpu for ev in kernel.all_events} == {0, 1}
        assert {ev.flags for ev in kernel.all_events} == {
            _abi.PERF_FLAG_FD_CLOEXEC | _abi.PERF_FLAG_PID_CGROUP
        }
        dir_fd = kernel.all_events[0].pid
        assert dir_fd >= 0
        with pytest.raises(OSError):  # closed once the events hold their own reference
            import os

            os.fstat(dir_fd)
        assert c.scope == "cgroup"


def test_cgroup_missing_directory() -> None:
    with pytest.raises(CountingError, match="cannot open cgroup directory"):
        Counters.cgroup(["task-clock"], "/nonexistent/cgroup", syscalls=FakeKernel(), pmus=VM)


def test_e2big_retries_with_the_kernel_size() -> None:
    """Fake kernel that knows only the 128-byte struct (Linux 5.13-6.2) and refuses a larger size."""
    kernel = FakeKernel(kernel_attr_size=128, strict_size=True)
    with _open_sw(kernel, ["task-clock", "page-faults"], cpus=(0,)) as c:
        assert [call["size"] for call in kernel.open_calls] == [136, 128, 136, 128]
        assert {ev.size for ev in kernel.all_events} == {128}
        assert len(c.events) == 2


def test_e2big_is_not_retried_when_a_newer_field_is_set() -> None:
    """Fake 6.2-era kernel: config3 (6.3) would be silently dropped by a retry, so the event fails."""
    kernel = FakeKernel(kernel_attr_size=128)
    spec = parse_event("cpu/config=1,config3=5/", SERVER)
    with Counters.system_wide(
        [spec, "task-clock"], cpus=(0,), syscalls=kernel, pmus=SERVER, sysfs_root=SERVER_ROOT
    ) as c:
        err = c.failed[spec.name]
        assert err.errno == errno.E2BIG and "config3" in err.reason
        assert [s.name for s in c.events] == ["task-clock"]


def test_unavailable_events_are_listed_and_the_rest_count() -> None:
    """Fake kernel answering ENOENT for hardware events, as this VM's kernel does, with the VM fixture."""

    def refuse(attr: _abi.PerfEventAttr, pid: int, cpu: int) -> int | None:
        return errno.ENOENT if attr.type in (0, 3) else None

    kernel = FakeKernel(refuse=refuse)
    with Counters.system_wide(
        ["cycles", "LLC-loads", "task-clock"], cpus=(0, 1), syscalls=kernel, pmus=VM, sysfs_root=VM_ROOT
    ) as c:
        assert sorted(c.failed) == ["LLC-loads", "cycles"]
        assert c.failed["cycles"].errno_name == "ENOENT"
        assert c.failed["cycles"].reason.startswith("no hardware PMU")
        assert [s.name for s in c.events] == ["task-clock"]
        # Refused on the first CPU: not retried on the others.
        assert sum(1 for call in kernel.open_calls if call["type"] == 0) == 1


def test_nothing_countable_raises_with_every_reason() -> None:
    kernel = FakeKernel(refuse=lambda attr, pid, cpu: errno.EACCES)
    with pytest.raises(CountingError) as info:
        Counters.system_wide(
            ["task-clock", "page-faults"],
            cpus=(0,),
            syscalls=kernel,
            pmus=VM,
            sysfs_root=VM_ROOT,
            context=UNPRIVILEGED,
        )
    exc = info.value
    assert exc.errno == errno.EACCES
    assert [e.event for e in exc.errors] == ["task-clock", "page-faults"]
    assert "perf_event_paranoid" in str(exc)
    assert kernel.open_fds == set()


def test_per_cpu_failure_keeps_the_event_on_other_cpus() -> None:
    """Fake kernel with CPU 1 going offline (ENODEV) after CPU 0 opened."""
    kernel = FakeKernel(refuse=lambda attr, pid, cpu: errno.ENODEV if cpu == 1 else None)
    with _open_sw(kernel, ["task-clock"], cpus=(0, 1, 2)) as c:
        assert c.failed == {}
        assert c.cpu_errors["task-clock"][1].errno == errno.ENODEV
        assert set(c.read()["task-clock"]) == {0, 2}


def test_user_only_fallback() -> None:
    """Fake kernel applying paranoid 2 to an unprivileged caller: EACCES unless kernel mode is excluded."""

    def refuse(attr: _abi.PerfEventAttr, pid: int, cpu: int) -> int | None:
        return None if attr.exclude_kernel and attr.exclude_hv else errno.EACCES

    kernel = FakeKernel(refuse=refuse)
    with Counters.process(
        ["task-clock", "page-faults"], 0, syscalls=kernel, pmus=VM, user_only_fallback=True
    ) as c:
        assert c.user_only == {"task-clock", "page-faults"}
        assert all(s.exclude_kernel and s.exclude_hv for s in c.events)
        assert all(
            ev.exclude_kernel and ev.exclude_hv and not ev.exclude_user for ev in kernel.events.values()
        )
    kernel2 = FakeKernel(refuse=refuse)
    with pytest.raises(CountingError) as info:
        Counters.process(["task-clock"], 0, syscalls=kernel2, pmus=VM, context=UNPRIVILEGED)
    assert ":u" in info.value.hint


def test_partial_open_failure_closes_everything() -> None:
    """A failure that is not an errno (a bug, a KeyboardInterrupt) half-way through the opens."""
    calls = {"n": 0}

    def refuse(attr: _abi.PerfEventAttr, pid: int, cpu: int) -> int | None:
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return None

    kernel = FakeKernel(refuse=refuse)
    with pytest.raises(KeyboardInterrupt):
        _open_sw(kernel, HW + SW, cpus=(0, 1))
    assert len(kernel.all_events) == 6
    assert kernel.open_fds == set()


def test_emfile_aborts_with_a_clear_error_and_no_leak() -> None:
    """Fake kernel with a 10-descriptor limit: 9 events x 2 CPUs need 18."""
    kernel = FakeKernel(fd_limit=10)
    with pytest.raises(CountingError) as info:
        _open_sw(kernel, HW + SW, cpus=(0, 1))
    exc = info.value
    assert exc.errno == errno.EMFILE
    assert "18 descriptors are needed" in exc.reason
    assert "ulimit -n" in exc.hint
    assert kernel.open_fds == set()


def test_read_error_in_one_group_does_not_hide_the_others() -> None:
    kernel = FakeKernel()
    with _open_sw(kernel, ["cycles", "task-clock"], cpus=(0, 1)) as c:
        victim = kernel.find(1, 1, type_=_abi.PERF_TYPE_SOFTWARE)
        kernel.events.pop(victim.fd)  # the kernel side vanished (CPU unplugged)
        r = c.read()
        assert set(r["task-clock"]) == {0}
        assert set(r["cycles"]) == {0, 1}
        assert [(n, cpu) for n, cpu, _e in c.last_read_errors] == [("task-clock", 1)]
        kernel.events[victim.fd] = victim


def test_explicit_groups_and_validation() -> None:
    kernel = FakeKernel()
    with _open_sw(kernel, [("cycles", "instructions"), "branches", "task-clock"], cpus=(0,)) as c:
        assert c.groups == [["cycles", "instructions"], ["branches"], ["task-clock"]]
    with pytest.raises(ValueError, match="cannot share one group"):
        _open_sw(FakeKernel(), [("cycles", "task-clock")])
    with pytest.raises(ValueError, match="listed twice"):
        _open_sw(FakeKernel(), ["cycles", "cycles"])
    with pytest.raises(ValueError, match="no events"):
        _open_sw(FakeKernel(), [])
    with pytest.raises(ValueError, match="pid"):
        Counters.process(["task-clock"], -5, syscalls=FakeKernel(), pmus=VM)


def test_close_is_idempotent_and_read_after_close_fails() -> None:
    kernel = FakeKernel()
    c = _open_sw(kernel, ["task-clock"], cpus=(0,))
    c.close()
    c.close()
    assert kernel.open_fds == set()
    assert len(kernel.closed) == 1
    with pytest.raises(ValueError, match="closed"):
        c.read()


def test_core_pmu_event_outside_the_requested_cpus() -> None:
    """Hybrid fixture, fake kernel: asking for cpu_atom events on a P-core only is an error, not silence."""
    kernel = FakeKernel()
    with Counters.system_wide(
        ["cpu_atom/cycles/", "task-clock"], cpus=(0,), syscalls=kernel, pmus=HYBRID, sysfs_root=HYBRID_ROOT
    ) as c:
        err = c.failed["cpu_atom/cycles/"]
        assert err.errno == errno.ENODEV and "cpu_atom (CPUs 8-15)" in err.reason
        assert [s.name for s in c.events] == ["task-clock"]


def test_unknown_architecture_is_refused_up_front() -> None:
    from perfpulse.perf.counting import LinuxSyscalls

    with pytest.raises(_abi.UnsupportedArch, match="mips64"):
        LinuxSyscalls("mips64")


@given(
    st.integers(0, 2**48),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
    st.integers(0, 2**48),
    st.integers(0, 2**40),
    st.integers(0, 2**40),
)
def test_scaling_properties(v0: int, e0: int, r0: int, dv: int, de: int, dr: int) -> None:
    r0 = min(r0, e0)
    dr = min(dr, de)
    prev, cur = Reading(), Reading()
    prev["x"] = {0: RawCount(v0, e0, r0)}
    cur["x"] = {0: RawCount(v0 + dv, e0 + de, r0 + dr)}
    s = cur.delta(prev)["x"][0]
    assert (s.raw, s.enabled, s.running) == (dv, de, dr)
    if dr == 0:
        assert s.value is None
    else:
        assert s.value == pytest.approx(dv * de / dr)
        assert s.value >= dv
    if de == 0:
        assert s.ratio is None
    else:
        assert s.ratio is not None and 0.0 <= s.ratio <= 1.0


def test_split_after_an_unsupported_event_was_dropped() -> None:
    """Fake 2-counter PMU that also lacks one event: the split point is computed on the plan, not on the
    list that lost the unsupported event."""

    def refuse(attr: _abi.PerfEventAttr, pid: int, cpu: int) -> int | None:
        return errno.ENOENT if attr.config == 1 else None  # no "instructions"

    kernel = FakeKernel(counters=2, refuse=refuse)
    with _open_sw(kernel, ["cycles", "instructions", "branches", "branch-misses"], cpus=(0, 1)) as c:
        assert "instructions" in c.failed
        assert sorted(n for g in c.groups for n in g) == ["branch-misses", "branches", "cycles"]
        assert all(len(g) <= 2 for g in c.groups)
        assert set(c.read()) == {"cycles", "branches", "branch-misses"}
    assert kernel.open_fds == set()


def test_explicit_group_splits_per_core_pmu_on_hybrid() -> None:
    """Fixture: Alder Lake-like hybrid (cpu_core 0-7 type 4, cpu_atom 8-15 type 10); fake kernel standing
    in for both core PMUs. A group cannot span two PMUs, so ("cycles", "instructions") must become one
    group per core PMU, each on its own PMU's CPUs, as ``perf stat`` does."""
    kernel = FakeKernel()
    with Counters.system_wide(
        [("cycles", "instructions"), "task-clock"], syscalls=kernel, pmus=HYBRID, sysfs_root=HYBRID_ROOT
    ) as c:
        assert c.groups == [
            ["cpu_atom/cycles/", "cpu_atom/instructions/"],
            ["cpu_core/cycles/", "cpu_core/instructions/"],
            ["task-clock"],
        ]
        assert c.group_of("cpu_core/cycles/") == c.group_of("cpu_core/instructions/")
        assert c.group_of("cpu_atom/cycles/") == c.group_of("cpu_atom/instructions/")
        assert c.group_of("cpu_atom/cycles/") != c.group_of("cpu_core/cycles/")
        hardware = [ev for ev in kernel.all_events if ev.type == _abi.PERF_TYPE_HARDWARE]
        by_pmu: dict[int, set[int]] = {}
        for ev in hardware:
            by_pmu.setdefault(ev.config >> 32, set()).add(ev.cpu)
        assert by_pmu == {4: set(range(8)), 10: set(range(8, 16))}
        for ev in hardware:
            if ev.group_fd == -1:
                assert ev.config & 0xFFFFFFFF == 0  # cycles leads each group
                assert [kernel.events[m].config for m in ev.members] == [(ev.config >> 32 << 32) | 1]
        for cpu, pmu_type in ((3, 4), (12, 10)):
            leader = kernel.find(pmu_type << 32, cpu)
            kernel.find((pmu_type << 32) | 1, cpu).value = 300
            leader.value = 100
            kernel.set_times(leader.fd, 50, 50)
        r = c.read()
        assert set(r["cpu_core/instructions/"]) == set(range(8))
        assert set(r["cpu_atom/instructions/"]) == set(range(8, 16))
        assert r["cpu_core/instructions/"][3] == RawCount(300, 50, 50)
        assert r["cpu_atom/cycles/"][12] == RawCount(100, 50, 50)
    with pytest.raises(ValueError, match="cannot share one group"):
        Counters.system_wide(
            [("cycles", "task-clock")], syscalls=FakeKernel(), pmus=HYBRID, sysfs_root=HYBRID_ROOT
        )
