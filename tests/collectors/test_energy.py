"""The energy collector.

This machine (a VM) has neither a ``power`` PMU nor /sys/class/powercap, so RAPL cannot be read here: the
powercap path runs against sysfs-shaped fixture files written by the test, and the perf path against a fake
syscall layer (``FakeSyscalls``) that plays the kernel's part for the ``power`` PMU. The unavailable path
runs against this machine's real /sys.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from fakeperf import FakeSyscalls, write_power_pmu
from hypothesis import given, settings
from hypothesis import strategies as st

from perfpulse.collectors.base import Roots
from perfpulse.collectors.energy import MAX_WATTS, EnergyCollector


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def write_zone(sys: Path, zone: str, name: str, energy_uj: int, max_uj: int = 262143328850) -> None:
    d = sys / "class" / "powercap" / zone
    d.mkdir(parents=True, exist_ok=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")


def powercap_tree(sys: Path, pkg: int, core: int, dram: int, psys: int, max_uj: int = 262143328850) -> None:
    (sys / "class" / "powercap" / "intel-rapl").mkdir(parents=True, exist_ok=True)  # the control type
    write_zone(sys, "intel-rapl:0", "package-0", pkg, max_uj)
    write_zone(sys, "intel-rapl:0:0", "core", core, max_uj)
    write_zone(sys, "intel-rapl:0:1", "dram", dram, max_uj)
    write_zone(sys, "intel-rapl:1", "psys", psys, max_uj)
    write_zone(sys, "intel-rapl-mmio:0", "package-0", pkg * 7, max_uj)  # duplicate interface: ignored


def test_powercap_watts_joules_and_wrap(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    powercap_tree(sys, pkg=99_000_000, core=500_000, dram=100_000, psys=0, max_uj=100_000_000)
    clock = Clock()
    c = EnergyCollector(roots=Roots.under(tmp_path), clock=clock, frozen_after=3.0)
    assert c.is_available()
    first = c.collect_sync()
    assert first["source"] == "powercap"
    assert "no `power` PMU" in first["fallback_reason"]
    assert first["domains"]["pkg"]["watts"] is None

    clock.now += 2.0
    # the package counter wrapped: 1 J below the top of its 100 J range at t0, 28 J past zero at t1
    powercap_tree(sys, pkg=28_000_000, core=10_500_000, dram=4_100_000, psys=0, max_uj=100_000_000)
    data = c.collect_sync()
    d = data["domains"]
    assert d["pkg"]["watts"] == 29.0 / 2.0
    assert d["pkg"]["joules_total"] == 29.0
    assert d["cores"]["watts"] == 5.0
    assert d["ram"]["watts"] == 2.0
    assert d["psys"]["watts"] is None  # not advancing: unknown, never 0 W
    assert d["psys"]["frozen"] is False
    assert data["packages"]["0"]["ram"]["watts"] == 2.0
    assert "platform" in data["packages"]

    for _ in range(2):
        clock.now += 1.0
        data = c.collect_sync()
    psys = data["domains"]["psys"]
    assert psys["frozen"] is True
    assert psys["watts"] is None
    assert "has not advanced in 4 s" in psys["reason"]
    samples = {s.series_key for s in c.samples(data)}
    assert 'energy_consumed_joules_total{domain="psys"}' in samples
    assert 'energy_power_watts{domain="psys"}' not in samples
    c.close()


def test_powercap_root_only(tmp_path: Path) -> None:
    """energy_uj is mode 0400 since Linux 5.10; as root the test cannot lose read access, so it removes
    the file's content instead and checks that an unreadable counter is null, not 0."""
    sys = tmp_path / "sys"
    powercap_tree(sys, pkg=1, core=1, dram=1, psys=1)
    (sys / "class/powercap/intel-rapl:0/energy_uj").write_text("")
    c = EnergyCollector(roots=Roots.under(tmp_path))
    data = c.collect_sync()
    assert data["domains"]["pkg"]["joules_total"] is None
    assert data["domains"]["cores"]["joules_total"] == 0.0


def test_unavailable_on_this_machine() -> None:
    c = EnergyCollector()
    require_no_rapl = not Path("/sys/bus/event_source/devices/power").exists()
    if require_no_rapl and not Path("/sys/class/powercap").exists():
        assert not c.is_available()
        assert "no `power` PMU" in (c.unavailable_reason() or "")
        data = asyncio.run(c.collect())
        assert data["available"] is False
        assert "intel_rapl_msr" in data["hint"]
    c.close()


def test_perf_power_pmu_with_a_frozen_psys_domain(tmp_path: Path) -> None:
    """The ``power`` PMU through the fake kernel: energy-pkg advances, energy-psys opens but stays at 0
    (what a virtualised RAPL does). pkg gets watts; psys becomes frozen with null watts."""
    sys = tmp_path / "sys"
    write_power_pmu(sys, cpumask="0,4", packages={0: 0, 4: 1})
    fake = FakeSyscalls(sys)
    clock = Clock()
    c = EnergyCollector(roots=Roots.under(tmp_path), syscalls=fake, clock=clock, frozen_after=3.0)
    scale = 2.3283064365386962890625e-10
    per_second = {"energy-pkg": 50.0 / scale, "energy-cores": 20.0 / scale, "energy-ram": 5.0 / scale}
    fake.advance_rates = per_second
    data = c.collect_sync()
    assert data["source"] == "perf"
    opened_cpus = sorted(fd.cpu for fd in fake.open_fds.values())
    assert opened_cpus == [0, 0, 0, 0, 4, 4, 4, 4]  # each domain on each package's cpumask CPU
    clock.now += 1.0
    fake.advance(1.0)
    data = c.collect_sync()
    assert abs(data["domains"]["pkg"]["watts"] - 100.0) < 1e-6  # the first interval already has watts
    assert data["domains"]["psys"]["watts"] is None
    assert data["domains"]["psys"]["frozen"] is False  # not yet: 1 s without a change proves nothing
    for _ in range(3):
        clock.now += 1.0
        fake.advance(1.0)
        data = c.collect_sync()
    d = data["domains"]
    assert abs(d["pkg"]["watts"] - 100.0) < 1e-6  # 50 W on each of two packages
    assert abs(data["packages"]["1"]["pkg"]["watts"] - 50.0) < 1e-6
    assert abs(d["ram"]["watts"] - 10.0) < 1e-6
    assert abs(d["cores"]["watts"] - 40.0) < 1e-6
    assert d["cores"]["frozen"] is False
    assert abs(d["pkg"]["joules_total"] - 400.0) < 1e-3
    assert d["psys"]["frozen"] is True
    assert d["psys"]["watts"] is None
    assert "RAPL virtualised or unsupported domain" in d["psys"]["reason"]
    c.close()
    assert fake.open_fds == {}  # close() released every descriptor


def test_unavailable_source_is_looked_for_again_after_a_minute(tmp_path: Path) -> None:
    """A missing driver costs one sysfs walk a minute, not one per tick; one loaded later is found."""
    clock = Clock()
    c = EnergyCollector(roots=Roots.under(tmp_path), clock=clock)
    first = c.collect_sync()
    assert first["available"] is False
    assert "powercap: no " in first["reason"]
    powercap_tree(tmp_path / "sys", pkg=1, core=1, dram=1, psys=1)
    clock.now += 30.0
    assert c.collect_sync()["available"] is False
    clock.now += 31.0
    assert c.collect_sync()["source"] == "powercap"
    c.close()


def test_perf_refused_falls_back_to_powercap_and_says_why(tmp_path: Path) -> None:
    """perf_event_open refused (EACCES, as for an unprivileged user at paranoid 2): powercap is used and
    the perf failure is kept in ``fallback_reason``. Fake kernel: this VM has no power PMU to refuse."""
    import errno

    sys = tmp_path / "sys"
    write_power_pmu(sys, cpumask="0", packages={0: 0})
    powercap_tree(sys, pkg=10, core=5, dram=1, psys=1)
    fake = FakeSyscalls(sys)
    fake.refuse = {e: errno.EACCES for e in ("energy-pkg", "energy-cores", "energy-ram", "energy-psys")}
    c = EnergyCollector(roots=Roots.under(tmp_path), syscalls=fake)
    data = c.collect_sync()
    assert data["source"] == "powercap"
    assert "perf: the power PMU's events could not be opened" in data["fallback_reason"]
    assert fake.open_fds == {}
    c.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=2, max_size=12))
def test_any_counter_sequence_gives_no_negative_or_absurd_watts(values: list[int]) -> None:
    """Arbitrary energy_uj readings (wraps, resets, stalls): watts are null or within [0, MAX_WATTS], and
    the joules total never goes down."""
    with tempfile.TemporaryDirectory() as d:
        base = Path(d)
        clock = Clock()
        c = EnergyCollector(roots=Roots.under(base), clock=clock, use_perf=False)
        total = 0.0
        for v in values:
            write_zone(base / "sys", "intel-rapl:0", "package-0", v, max_uj=10**9)
            pkg = c.collect_sync()["domains"]["pkg"]
            assert pkg["watts"] is None or 0.0 <= pkg["watts"] <= MAX_WATTS
            assert pkg["joules_total"] >= total
            total = pkg["joules_total"]
            clock.now += 1.0
