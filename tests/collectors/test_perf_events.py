"""PerfEventsCollector: grouping and derived-metric math (pure), a fake syscall layer for the hardware
path this machine lacks, and real system-wide software counting as root."""

from __future__ import annotations

import ast
import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from support import require_root

from perfpulse.collectors.base import registry
from perfpulse.collectors.perf_events import (
    CATALOGUE,
    DEFAULT_EVENTS,
    PerfEventsCollector,
    base_name,
    derive,
    plan_groups,
)
from perfpulse.model import iter_samples


# -- pure parts
def test_registered_and_default_groups_pair_ratios() -> None:
    assert registry()["perf_events"] is PerfEventsCollector
    group_of = {name: i for i, group in enumerate(DEFAULT_EVENTS) for name in group}
    assert group_of["cycles"] == group_of["instructions"]
    assert group_of["LLC-loads"] == group_of["LLC-load-misses"]
    assert group_of["dTLB-loads"] == group_of["dTLB-load-misses"]
    assert group_of["cpu-clock"] == group_of["major-faults"] != group_of["cycles"]


def test_plan_groups_pairs_loose_names_and_keeps_explicit_groups() -> None:
    planned = plan_groups(
        ["branch-misses", "page-faults", "r01c2", "branches", "cs", ("cycles", "ref-cycles")]
    )
    assert planned == (
        ("cycles", "ref-cycles"),
        ("branch-misses", "branches"),
        ("r01c2",),
        ("page-faults", "cs"),
    )
    assert plan_groups(["cycles", "cycles"]) == (("cycles",),)


def test_base_name_strips_pmu_and_modifiers() -> None:
    assert base_name("cpu_core/cycles/") == "cycles"
    assert base_name("cpu_atom/instructions/u") == "instructions"
    assert base_name("cycles:u") == "cycles"
    assert base_name("cpu/event=0x3c,umask=0x1/") == "cpu/event=0x3c,umask=0x1/"


def test_derive_ratios_need_one_group() -> None:
    values: dict[str, float | None] = {
        "cycles": 4e9,
        "instructions": 6e9,
        "branches": 1e9,
        "branch-misses": 2e7,
        "LLC-loads": 1e6,
        "LLC-load-misses": 0.0,
        "dTLB-loads": 0.0,
        "dTLB-load-misses": 0.0,
        "cpu-clock": 2e9,
    }
    groups = {"cycles": 0, "instructions": 0, "branches": 1, "branch-misses": 1, "LLC-loads": 2}
    groups |= {"LLC-load-misses": 2, "dTLB-loads": 3, "dTLB-load-misses": 3, "cpu-clock": 9}
    d = derive(values, groups, seconds=1.0)
    assert d["ipc"] == pytest.approx(1.5) and d["cpi"] == pytest.approx(4 / 6)
    assert d["branch_miss_ratio"] == pytest.approx(0.02)
    assert d["llc_load_miss_ratio"] == 0.0
    assert d["dtlb_load_miss_ratio"] is None  # 0/0: nothing to divide by
    assert d["effective_frequency_hz"] == pytest.approx(2e9)
    assert d["cpu_clock_seconds_per_second"] == pytest.approx(2.0)
    assert "cache_miss_ratio" not in d  # not configured
    apart = derive(values, groups | {"instructions": 5})
    assert "ipc" not in apart and "cpi" not in apart
    unscheduled = derive(values | {"instructions": None}, groups)
    assert unscheduled["ipc"] is None


def test_derive_sums_hybrid_core_pmus_per_group() -> None:
    values: dict[str, float | None] = {
        "cpu_core/cycles/": 3e9,
        "cpu_core/instructions/": 9e9,
        "cpu_atom/cycles/": 1e9,
        "cpu_atom/instructions/": 1e9,
    }
    groups = {"cpu_core/cycles/": 0, "cpu_core/instructions/": 0, "cpu_atom/cycles/": 1}
    groups |= {"cpu_atom/instructions/": 1}
    assert derive(values, groups)["ipc"] == pytest.approx(2.5)


def test_catalogue_covers_every_number_of_a_tick() -> None:
    names = [m.name for m in CATALOGUE]
    assert len(names) == len(set(names))
    assert {"perf_event_rate_per_second", "perf_event_cpu_rate_per_second", "perf_ipc_ratio"} <= set(names)
    tick: dict[str, Any] = {
        "interval_seconds": 1.0,
        "events": {
            "cycles": {
                "group": 0,
                "delta": 5.0,
                "rate": 5.0,
                "running_ratio": 1.0,
                "total": 9.0,
                "per_cpu": {"0": {"delta": 5.0, "rate": 5.0, "running_ratio": 1.0}},
            }
        },
        "derived": {"ipc": 1.0, "effective_frequency_hz": 2e9},
        "derived_per_cpu": {"0": {"ipc": 1.0}},
    }
    found = {s.series_key for spec in CATALOGUE for s in iter_samples(spec, tick)}
    assert 'perf_event_cpu_rate_per_second{event="cycles",cpu="0"}' in found
    assert 'perf_cpu_ipc_ratio{cpu="0"}' in found
    assert "perf_effective_frequency_hertz" in found
    # every number in the tick except the group index is a declared series
    assert len(found) == 11


# -- the hardware path, through a fake syscall layer
class FakePerf:
    """A stand-in for perf_event_open/read/ioctl/close: this VM has no hardware PMU, so the hardware
    groups, multiplexing and derived ratios can only be exercised this way. Each event counts
    ``rate * seconds * (cpu + 1)``; hardware groups run ``share`` of the enabled time, as when the PMU
    multiplexes, so the collector must scale the raw counts back up."""

    def __init__(self, rates: dict[tuple[int, int], float], share: float) -> None:
        self.rates = rates
        self.share = share
        self.now = 0.0
        self.fds: dict[int, tuple[tuple[int, int], int]] = {}
        self.members: dict[int, list[int]] = {}
        self.open_fds: set[int] = set()
        self.next_fd = 1000

    def perf_event_open(self, attr: Any, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        assert pid == -1 and cpu >= 0  # system-wide: one group per CPU
        fd = self.next_fd
        self.next_fd += 1
        self.fds[fd] = ((int(attr.type), int(attr.config)), cpu)
        self.members.setdefault(fd if group_fd < 0 else group_fd, []).append(fd)
        self.open_fds.add(fd)
        return fd

    def read(self, fd: int, size: int) -> bytes:
        import struct

        members = self.members[fd]
        hardware = self.fds[fd][0][0] != 1  # PERF_TYPE_SOFTWARE
        enabled = int(self.now * 1e9)
        running = int(enabled * (self.share if hardware else 1.0))
        words = [len(members), enabled, running]
        for m in members:
            key, cpu = self.fds[m]
            true = self.rates[key] * self.now * (cpu + 1)
            words += [round(true * running / enabled) if enabled else 0, m]
        return struct.pack(f"={len(words)}Q", *words)

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        return 0

    def close(self, fd: int) -> None:
        self.open_fds.discard(fd)


RATES = {
    "cycles": 3e9,
    "instructions": 6e9,
    "branches": 1e9,
    "branch-misses": 1e7,
    "cache-references": 1e8,
    "cache-misses": 2.5e7,
    "L1-dcache-loads": 2e9,
    "L1-dcache-load-misses": 1e8,
    "LLC-loads": 1e7,
    "LLC-load-misses": 5e6,
    "dTLB-loads": 2e9,
    "dTLB-load-misses": 2e6,
    "stalled-cycles-frontend": 3e8,
    "stalled-cycles-backend": 6e8,
    "cpu-clock": 1e9,
    "context-switches": 1000,
    "cpu-migrations": 10,
    "page-faults": 500,
    "major-faults": 1,
}


def _fake(tmp_path: Path, share: float) -> tuple[FakePerf, PerfEventsCollector]:
    from perfpulse.perf.events import resolve_events

    keys = {name: (s.type, s.config) for name in RATES for s in resolve_events([name], {})}
    fake = FakePerf({keys[n]: r for n, r in RATES.items()}, share)
    cpu_dir = tmp_path / "devices" / "system" / "cpu"
    cpu_dir.mkdir(parents=True)
    (cpu_dir / "online").write_text("0-3\n")
    collector = PerfEventsCollector(syscalls=fake, sysfs_root=tmp_path, settle=0.0, clock=lambda: fake.now)
    return fake, collector


def test_hardware_groups_scaled_and_derived_with_fake_syscalls(tmp_path: Path) -> None:
    """Fake syscall layer (no PMU here): 4 CPUs, hardware groups on the PMU half the time."""
    fake, collector = _fake(tmp_path, share=0.5)

    async def ticks() -> tuple[dict[str, Any], dict[str, Any]]:
        first = await collector.collect()  # opens and reads at t=0: nothing has run yet
        fake.now = 2.0
        return first, await collector.collect()

    first, tick = asyncio.run(ticks())
    assert first["first_tick"] is True and first["events"]["cycles"]["delta"] is None  # not counted, not 0
    assert first["derived"]["ipc"] is None
    assert tick["first_tick"] is False and tick["interval_seconds"] == 2.0
    assert tick["cpus"] == [0, 1, 2, 3] and tick["unsupported"] == {}
    cycles = tick["events"]["cycles"]
    assert cycles["delta"] == pytest.approx(3e9 * 2 * 10)  # scaled back up from the half it ran
    assert cycles["rate"] == pytest.approx(3e9 * 10) and cycles["running_ratio"] == pytest.approx(0.5)
    assert cycles["per_cpu"]["3"]["rate"] == pytest.approx(3e9 * 4)
    assert tick["events"]["page-faults"]["running_ratio"] == 1.0
    assert tick["events"]["cycles"]["group"] == tick["events"]["instructions"]["group"]
    d = tick["derived"]
    assert d["ipc"] == pytest.approx(2.0) and d["cpi"] == pytest.approx(0.5)
    assert d["branch_miss_ratio"] == pytest.approx(0.01) and d["cache_miss_ratio"] == pytest.approx(0.25)
    assert d["l1d_load_miss_ratio"] == pytest.approx(0.05) and d["llc_load_miss_ratio"] == pytest.approx(0.5)
    assert d["dtlb_load_miss_ratio"] == pytest.approx(0.001)
    assert d["effective_frequency_hz"] == pytest.approx(3e9)
    assert d["cpu_clock_seconds_per_second"] == pytest.approx(10.0)
    assert tick["derived_per_cpu"]["2"]["ipc"] == pytest.approx(2.0)
    samples = {s.series_key: s.value for s in collector.samples(tick)}
    assert samples['perf_event_cpu_running_ratio{event="LLC-loads",cpu="1"}'] == pytest.approx(0.5)
    assert samples["perf_ipc_ratio"] == pytest.approx(2.0)
    assert fake.open_fds  # still open between ticks
    collector.close()
    assert not fake.open_fds  # close() releases every descriptor


def test_not_counted_when_never_scheduled(tmp_path: Path) -> None:
    """Fake syscall layer: hardware groups never get the PMU (running == 0): null, not 0."""
    fake, collector = _fake(tmp_path, share=0.0)

    async def ticks() -> dict[str, Any]:
        await collector.collect()
        fake.now = 1.0
        return await collector.collect()

    tick = asyncio.run(ticks())
    collector.close()
    assert tick["events"]["instructions"]["delta"] is None and tick["events"]["instructions"]["rate"] is None
    assert tick["derived"]["ipc"] is None and tick["derived"]["effective_frequency_hz"] is None
    assert tick["events"]["cpu-clock"]["rate"] == pytest.approx(1e9 * 10)
    assert not any(s.name == "perf_ipc_ratio" for s in collector.samples(tick))


# -- real counting
def _online() -> list[int]:
    from perfpulse.perf.pmu import parse_cpulist

    return list(parse_cpulist(Path("/sys/devices/system/cpu/online").read_text()))


def test_real_system_wide_software_counting() -> None:
    require_root()
    fds_before = set(os.listdir("/proc/self/fd"))
    collector = PerfEventsCollector()
    assert collector.is_available()

    async def ticks() -> tuple[dict[str, Any], dict[str, Any]]:
        first = await collector.collect()
        await asyncio.sleep(0.3)
        return first, await collector.collect()

    first, tick = asyncio.run(ticks())
    cpus = _online()
    for data in (first, tick):
        assert data["available"] is True and data["cpus"] == cpus
        clock = data["events"]["cpu-clock"]
        assert sorted(int(c) for c in clock["per_cpu"]) == cpus
        # cpu-clock counts every CPU's time, idle or not: about 1 s per second per CPU
        assert all(0.85e9 < v["rate"] < 1.15e9 for v in clock["per_cpu"].values()), clock
        assert data["events"]["context-switches"]["rate"] > 0
        assert data["derived"]["cpu_clock_seconds_per_second"] == pytest.approx(len(cpus), rel=0.15)
    assert first["first_tick"] is True and 0.15 < first["interval_seconds"] < 1.0
    assert tick["first_tick"] is False and tick["interval_seconds"] >= 0.3
    assert tick["events"]["cpu-clock"]["total"] > first["events"]["cpu-clock"]["total"]
    if not Path("/sys/bus/event_source/devices/cpu").exists():  # a VM without a PMU, like this one
        for name in ("cycles", "instructions", "LLC-load-misses", "dTLB-loads"):
            assert tick["unsupported"][name]["errno"] == "ENOENT"
            assert tick["unsupported"][name]["reason"].startswith("no hardware PMU")
        assert "cycles" not in tick["events"] and "ipc" not in tick["derived"]
    samples = list(collector.samples(tick))
    assert any(s.name == "perf_event_cpu_rate_per_second" for s in samples)
    collector.close()
    collector.close()  # idempotent
    assert set(os.listdir("/proc/self/fd")) == fds_before


def test_configured_events_and_unknown_names() -> None:
    require_root()
    collector = PerfEventsCollector(events=["page-faults", "no-such-event", ("cpu-clock", "cs")])
    assert collector.chosen_events == ["page-faults", "no-such-event", "cpu-clock", "cs"]
    try:
        data = asyncio.run(collector.collect())
    finally:
        collector.close()
    assert set(data["events"]) == {"page-faults", "cpu-clock", "cs"}
    assert data["events"]["cpu-clock"]["group"] == data["events"]["cs"]["group"]
    assert "unknown event 'no-such-event'" in data["unsupported"]["no-such-event"]["reason"]


ONE_LINER = (
    "import asyncio; from perfpulse.collectors.perf_events import PerfEventsCollector as P; "
    "c=P(); print(c.is_available()); print(asyncio.run(c.collect()))"
)


def test_the_documented_one_liner() -> None:
    import subprocess
    import sys

    require_root()
    done = subprocess.run([sys.executable, "-c", ONE_LINER], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stderr == ""
    first, second = done.stdout.splitlines()
    assert first == "True"
    assert "'available': True" in second and "'cpu-clock': {'group'" in second


def test_unprivileged_is_unavailable_with_reason_and_hint() -> None:
    """Real: as nobody at perf_event_paranoid 2 system-wide counting is refused; no exception."""
    import subprocess
    import sys

    from support import require_tool
    from test_cli_check import paranoid_level

    require_root()
    nobody = [require_tool("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    script = ONE_LINER.replace(
        "print(asyncio.run(c.collect()))", "print(asyncio.run(c.collect())); print(c.is_available())"
    )
    with paranoid_level(2):
        done = subprocess.run(
            [*nobody, sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd="/"
        )
    assert done.returncode == 0, done.stderr
    before, data, after = done.stdout.splitlines()
    assert before == "False" and after == "False"
    parsed = ast.literal_eval(data)  # the collector's dict, as Python prints it
    assert parsed["available"] is False
    assert "paranoid" in parsed["reason"] or "CAP_PERFMON" in parsed["reason"]
    assert parsed["hint"]


HYBRID_SYSFS = Path(__file__).resolve().parents[1] / "fixtures" / "pmu" / "hybrid"


def test_hybrid_machine_splits_groups_per_core_pmu_and_derives_ipc() -> None:
    """Fake syscall layer on the hybrid fixture sysfs (cpu_core CPUs 0-7, cpu_atom CPUs 8-15): no hybrid
    PMU here. Each configured pair becomes one group per core PMU; IPC per CPU comes from its own PMU's
    pair and the machine-wide IPC from the same-group sums of both."""
    from perfpulse.perf.events import UnknownEventError, resolve_events
    from perfpulse.perf.pmu import discover_pmus

    pmus = discover_pmus(HYBRID_SYSFS)
    atom = {"cycles": 2e9, "instructions": 2e9}  # E-cores: IPC 1, P-cores: IPC 2
    rates: dict[tuple[int, int], float] = {}
    for name, rate in RATES.items():
        try:
            specs = resolve_events([name], pmus)
        except UnknownEventError:
            continue
        for s in specs:
            rates[(s.type, s.config)] = atom.get(name, rate) if s.pmu == "cpu_atom" else rate
    fake = FakePerf(rates, share=1.0)
    collector = PerfEventsCollector(
        syscalls=fake, sysfs_root=HYBRID_SYSFS, settle=0.0, clock=lambda: fake.now
    )

    async def ticks() -> dict[str, Any]:
        await collector.collect()
        fake.now = 1.0
        return await collector.collect()

    tick = asyncio.run(ticks())
    collector.close()
    assert tick["available"] is True and tick["cpus"] == list(range(16))
    events = tick["events"]
    assert "cycles" not in events
    assert set(events["cpu_core/cycles/"]["per_cpu"]) == {str(c) for c in range(8)}
    assert set(events["cpu_atom/instructions/"]["per_cpu"]) == {str(c) for c in range(8, 16)}
    assert events["cpu_core/cycles/"]["group"] == events["cpu_core/instructions/"]["group"]
    assert events["cpu_atom/cycles/"]["group"] == events["cpu_atom/instructions/"]["group"]
    assert events["cpu_atom/cycles/"]["group"] != events["cpu_core/cycles/"]["group"]
    assert tick["derived_per_cpu"]["3"]["ipc"] == pytest.approx(2.0)
    assert tick["derived_per_cpu"]["12"]["ipc"] == pytest.approx(1.0)
    # Weights: each CPU counts (cpu + 1) times the rate, so P-cores weigh 36 and E-cores 100.
    ipc = (6e9 * 36 + 2e9 * 100) / (3e9 * 36 + 2e9 * 100)
    assert tick["derived"]["ipc"] == pytest.approx(ipc)
    assert tick["derived"]["cpi"] == pytest.approx(1 / ipc)
    assert not fake.open_fds
