"""The memory_bandwidth collector.

This machine is a VM without uncore PMUs, so DRAM counting runs against sysfs-shaped PMU directories
written by the test and a fake perf syscall layer (``FakeSyscalls``) standing in for the kernel; the real
``Counters`` code (grouping, cpumask placement, scaling) runs on top of it. The page-I/O block and the
"no memory-controller PMU" path run against this machine's real /proc and /sys.
"""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

from fakeperf import FakeSyscalls, gen, write_online

from perfpulse.collectors.base import Roots
from perfpulse.collectors.memory_bandwidth import MemoryBandwidthCollector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def write_vmstat(proc: Path, pgpgin: int, pgpgout: int, pswpin: int, pswpout: int) -> None:
    proc.mkdir(parents=True, exist_ok=True)
    (proc / "vmstat").write_text(
        f"nr_free_pages 1000\npgpgin {pgpgin}\npgpgout {pgpgout}\npswpin {pswpin}\npswpout {pswpout}\n"
    )


def server_tree(tmp_path: Path, channels: int = 4) -> Path:
    sys = tmp_path / "sys"
    gen.write_imc_pmus(sys, channels=channels, cpumask="0,2")
    write_online(sys, "0-3")
    write_vmstat(tmp_path / "proc", 0, 0, 0, 0)
    return sys


def test_server_imc_sums_channels_and_applies_scale_and_unit(tmp_path: Path) -> None:
    sys = server_tree(tmp_path)
    fake = FakeSyscalls(sys)
    clock = Clock()
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=fake, clock=clock)
    # Each open event counts on both sockets' cpumask CPU: a rate of N per second per CPU is 2N per box.
    fake.advance_rates = {"cas_count_read": 1_000_000, "cas_count_write": 250_000}
    first = c.collect_sync()
    assert first["dram"]["available"] is True
    assert first["dram"]["source"] == "Intel server IMC"
    assert first["dram"]["read_bytes_per_second"] is None  # no interval yet
    assert sorted({cpu for _, cpu in fake.opened}) == [0, 2]
    assert len(fake.opened) == 4 * 2 * 2  # 4 boxes x 2 events x 2 sockets

    clock.now += 2.0
    fake.advance(2.0)
    write_vmstat(tmp_path / "proc", 10, 20, 4, 6)
    data = c.collect_sync()
    dram = data["dram"]
    # 6.103515625e-5 MiB per count is exactly 64 bytes: 1e6 counts/s x 2 sockets x 64 B, per box.
    per_box_read = 1_000_000 * 2 * 64
    assert dram["channels"]["uncore_imc_0"]["read_bytes_per_second"] == per_box_read
    assert dram["read_bytes_per_second"] == 4 * per_box_read
    assert dram["write_bytes_per_second"] == 4 * 250_000 * 2 * 64
    assert dram["running_ratio"] == 1.0
    page = data["page_io"]
    assert page["in_bytes_per_second"] == 10 * 1024 / 2.0
    assert page["out_bytes_per_second"] == 20 * 1024 / 2.0
    assert page["swap_in_pages_per_second"] == 2.0
    assert page["swap_out_pages_per_second"] == 3.0

    samples = {s.series_key: s.value for s in c.samples(data)}
    assert samples["memory_dram_read_bytes_per_second"] == 4 * per_box_read
    assert samples['memory_dram_channel_write_bytes_per_second{pmu="uncore_imc_3"}'] == 250_000 * 2 * 64
    assert samples["memory_page_io_in_bytes_per_second"] == 5120.0
    # page I/O is never called bandwidth, and DRAM never comes from vmstat
    assert not [m for m in c.catalogue if "page_io" in m.path and ("bandwidth" in m.name or "dram" in m.name)]
    c.close()
    assert fake.open_fds == {}


def test_multiplexed_counts_are_scaled_and_the_ratio_reported(tmp_path: Path) -> None:
    sys = server_tree(tmp_path, channels=1)
    fake = FakeSyscalls(sys)
    fake.running_fraction = {"cas_count_read": 0.5}  # the group is on the PMU half the time
    clock = Clock()
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=fake, clock=clock)
    fake.advance_rates = {"cas_count_read": 1000, "cas_count_write": 1000}
    c.collect_sync()
    clock.now += 1.0
    fake.advance(1.0)
    dram = c.collect_sync()["dram"]
    assert dram["running_ratio"] == 0.5
    # half the counts were seen in half the time: scaled back to the full rate
    assert dram["read_bytes_per_second"] == 1000 * 2 * 64
    c.close()


def test_not_counted_is_null_not_zero(tmp_path: Path) -> None:
    sys = server_tree(tmp_path, channels=1)
    fake = FakeSyscalls(sys)
    fake.running_fraction = {"cas_count_read": 0.0}
    clock = Clock()
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=fake, clock=clock)
    c.collect_sync()
    clock.now += 1.0
    fake.advance(1.0)
    dram = c.collect_sync()["dram"]
    assert dram["read_bytes_per_second"] is None
    assert dram["channels"]["uncore_imc_0"]["read_bytes_per_second"] is None
    c.close()


def test_client_imc(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    gen.write_client_imc_pmu(sys)
    write_online(sys, "0-7")
    write_vmstat(tmp_path / "proc", 0, 0, 0, 0)
    fake = FakeSyscalls(sys)
    clock = Clock()
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=fake, clock=clock)
    fake.advance_rates = {"data_reads": 100_000_000, "data_writes": 20_000_000}
    c.collect_sync()
    assert {cpu for _, cpu in fake.opened} == {0}
    clock.now += 1.0
    fake.advance(1.0)
    dram = c.collect_sync()["dram"]
    assert dram["source"] == "Intel client IMC"
    assert dram["read_bytes_per_second"] == 100_000_000 * 64  # 6.4 GB/s
    assert dram["write_bytes_per_second"] == 20_000_000 * 64
    c.close()


def test_amd_pmus_without_named_events_give_a_reason_and_page_io_stays(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    gen.write_pmu(
        sys, "amd_umc_0", 40, formats={"event": "config:0-7", "rdwrmask": "config:8-9"}, cpumask="0"
    )
    write_vmstat(tmp_path / "proc", 5, 5, 0, 0)
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=FakeSyscalls(sys))
    data = c.collect_sync()
    assert data["dram"]["available"] is False
    assert "amd_umc_0" in data["dram"]["reason"]
    assert "hint" in data["dram"]
    assert data["page_io"]["available"] is True
    assert c.is_available()


def test_open_refused_gives_the_kernel_reason(tmp_path: Path) -> None:
    sys = server_tree(tmp_path, channels=2)
    fake = FakeSyscalls(sys)
    fake.refuse = {"cas_count_read": errno.EACCES, "cas_count_write": errno.EACCES}
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=fake)
    data = c.collect_sync()
    assert data["dram"]["available"] is False
    assert "could not be opened" in data["dram"]["reason"]
    assert data["page_io"]["available"] is True
    assert fake.open_fds == {}


def test_unknown_unit_is_refused(tmp_path: Path) -> None:
    sys = server_tree(tmp_path, channels=1)
    (sys / "bus/event_source/devices/uncore_imc_0/events/cas_count_read.unit").write_text("lines\n")
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=FakeSyscalls(sys))
    reason = c.collect_sync()["dram"]["reason"]
    assert "'lines'" in reason


def test_this_machine_has_page_io_but_no_dram_counters() -> None:
    """The real thing here: no uncore PMU, so DRAM is unavailable with a reason, page I/O is live."""
    c = MemoryBandwidthCollector()
    try:
        first = asyncio.run(c.collect())
        has_imc = any(n.startswith("uncore_imc") for n in os.listdir("/sys/bus/event_source/devices"))
        if not has_imc:
            assert first["dram"]["available"] is False
            assert "uncore_imc" in first["dram"]["reason"]
        path = Path("/var/tmp/perfpulse-page-io-test")
        with path.open("wb") as f:
            f.write(os.urandom(4 << 20))
            f.flush()
            os.fsync(f.fileno())
        path.unlink()
        second = c.collect_sync()
        page = second["page_io"]
        for key in ("in_bytes_per_second", "out_bytes_per_second", "swap_in_pages_per_second"):
            assert page[key] is not None and page[key] >= 0
    finally:
        c.close()


def test_nothing_at_all_is_unavailable(tmp_path: Path) -> None:
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path))
    assert not c.is_available()
    data = c.collect_sync()
    assert data["available"] is False
    assert "DRAM:" in data["reason"] and "page I/O:" in data["reason"]


def test_a_pmu_that_appears_later_is_found_within_a_minute(tmp_path: Path) -> None:
    """The intel_uncore driver loaded after start: DRAM counting begins at the next search, not never."""
    write_vmstat(tmp_path / "proc", 0, 0, 0, 0)
    clock = Clock()
    sys = tmp_path / "sys"
    fake = FakeSyscalls(sys)
    c = MemoryBandwidthCollector(roots=Roots.under(tmp_path), syscalls=fake, clock=clock)
    assert c.collect_sync()["dram"]["available"] is False
    gen.write_imc_pmus(sys, channels=1, cpumask="0")
    write_online(sys, "0")
    fake.rescan(sys)  # the fake kernel learns the new PMU's events, as the real one would
    clock.now += 30.0
    assert c.collect_sync()["dram"]["available"] is False
    clock.now += 31.0
    assert c.collect_sync()["dram"]["available"] is True
    c.close()
