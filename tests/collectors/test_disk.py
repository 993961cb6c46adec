from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import require, require_root
from system_machines import (
    MACHINES,
    Clock,
    catalogue_gaps,
    copy_tree,
    drop_lines,
    large,
    numbers,
    scenario,
    ticks,
)

from perfpulse.collectors.base import Roots
from perfpulse.collectors.disk import DiskCollector, table_statvfs

WHOLE = ("nvme0n1", "nvme1n1", "nvme2n1")


def fixture_disk(clock: Clock) -> DiskCollector:
    return DiskCollector(clock=clock, statvfs=table_statvfs(MACHINES / "large/t0/statvfs.json"))


def use_tree_statvfs(collector: DiskCollector) -> Callable[[Path], None]:
    def swap(tree: Path) -> None:
        collector.statvfs.func = table_statvfs(tree / "statvfs.json")

    return swap


def test_large_machine_devices_kinds_and_totals() -> None:
    clock = Clock()
    c = fixture_disk(clock)
    first, second = ticks(c, clock, scenario("large"), use_tree_statvfs(c))
    assert first["devices"]["nvme0n1"]["read_bytes_per_second"] is None
    devs = second["devices"]
    assert "loop0" not in devs  # unattached: size 0
    kinds = {n: d["kind"] for n, d in devs.items()}
    assert kinds == {
        "nvme0n1": "whole",
        "nvme0n1p1": "partition",
        "nvme0n1p2": "partition",
        "nvme1n1": "whole",
        "nvme1n1p1": "partition",
        "nvme1n1p2": "partition",
        "nvme2n1": "whole",
        "nvme2n1p1": "partition",
        "dm-0": "dm",
        "dm-1": "dm",
        "md0": "md",
        "loop1": "virtual",
    }
    assert devs["nvme1n1p2"]["parent"] == "nvme1n1"
    assert devs["dm-0"]["dm_name"] == "vg0-root" and devs["dm-0"]["slaves"] == ["nvme0n1p2"]
    assert devs["dm-1"]["dm_name"] == "luks-data"
    assert devs["md0"]["slaves"] == ["nvme1n1p1", "nvme2n1p1"]
    for name, dev in devs.items():
        r, rs, w, ws, busy, weighted = large.disk_io(name)
        assert dev["reads_per_second"] == r and dev["writes_per_second"] == w
        assert dev["read_bytes_per_second"] == rs * 512 and dev["write_bytes_per_second"] == ws * 512
        assert dev["utilization_ratio"] == pytest.approx(busy / 1000)
        assert dev["queue_depth"] == pytest.approx(weighted / 1000)
    p2 = devs["nvme0n1p2"]  # 1200 reads at 80 us + 800 writes at 30 us, over 2000 I/Os
    assert p2["await_seconds"] == pytest.approx((96 + 24) / 2000 / 1000)
    total = second["total"]
    assert total["read_bytes_per_second"] == sum(large.disk_io(n)[1] * 512 for n in WHOLE)
    assert total["writes_per_second"] == sum(large.disk_io(n)[2] for n in WHOLE)
    assert second["info"]["md0"] == {"md": 1}
    assert catalogue_gaps(c, second) == []


def test_large_machine_filesystems() -> None:
    clock = Clock()
    c = fixture_disk(clock)
    _, second = ticks(c, clock, scenario("large"), use_tree_statvfs(c))
    fss = second["filesystems"]
    assert set(fss) == {"/", "/boot/efi", "/data", "/srv/secure vault", "/home"}  # no proc, tmpfs, squashfs
    row = large.statvfs_table(1)["/data"]
    data = fss["/data"]
    assert data["device"] == "/dev/md0" and data["fstype"] == "xfs" and data["state"] == "ok"
    assert data["size_bytes"] == row[2] * 4096
    assert data["used_bytes"] == (row[2] - row[3]) * 4096
    assert data["available_bytes"] == row[4] * 4096
    assert data["inodes_used"] == row[5] - row[6]
    assert fss["/home"]["fstype"] == "nfs4" and fss["/home"]["stuck"] == 0
    assert fss["/srv/secure vault"]["device"] == "/dev/mapper/luks-data"


def test_captured_machine() -> None:
    clock = Clock()
    c = DiskCollector(clock=clock, statvfs=table_statvfs(MACHINES / "captured/t0/statvfs.json"))
    _, second = ticks(c, clock, scenario("captured"), use_tree_statvfs(c))
    devs = second["devices"]
    assert any(d["kind"] == "whole" for d in devs.values())
    assert not any(n.startswith("loop") for n in devs)  # all unattached here
    assert second["filesystems"]["/"]["state"] == "ok"
    assert min(numbers(second)) >= 0


def test_minimal_machine_is_unavailable() -> None:
    c = DiskCollector(roots=Roots.under(MACHINES / "minimal/t0"))
    assert not c.is_available() and "diskstats" in (c.unavailable_reason() or "")
    out = asyncio.run(c.collect())
    assert out["available"] is False and out["hint"]


def test_counters_going_backwards_give_no_rate() -> None:
    clock = Clock()
    c = fixture_disk(clock)
    _, second = ticks(c, clock, [MACHINES / "large/t1", MACHINES / "large/t0"], use_tree_statvfs(c))
    for name in WHOLE:
        assert second["devices"][name]["read_bytes_per_second"] is None
        assert second["devices"][name]["await_seconds"] is None
    assert second["total"]["read_bytes_per_second"] is None
    assert min(numbers(second)) >= 0


def test_vanished_device_starts_fresh_when_it_returns(tmp_path: Path) -> None:
    t1 = copy_tree(MACHINES / "large/t1", tmp_path / "t1")
    drop_lines(t1 / "proc/diskstats", "259       6 nvme2n1 ")
    clock = Clock()
    c = fixture_disk(clock)
    _, second, third = ticks(
        c, clock, [MACHINES / "large/t0", t1, MACHINES / "large/t1"], use_tree_statvfs(c)
    )
    assert "nvme2n1" not in second["devices"] and "nvme2n1p1" in second["devices"]
    assert second["total"]["reads_per_second"] == sum(large.disk_io(n)[0] for n in WHOLE[:2])
    assert third["devices"]["nvme2n1"]["reads_per_second"] is None  # not a delta against t0
    assert third["total"]["reads_per_second"] == 0.0  # the returning disk adds nothing yet, the others idle


# -- statvfs that never answers ------------------------------------------------------------------------
def blocking_statvfs(
    block: set[str], release: threading.Event, calls: dict[str, int]
) -> Callable[[str], os.statvfs_result]:
    def statvfs(path: str) -> os.statvfs_result:
        calls[path] = calls.get(path, 0) + 1
        if path in block:
            release.wait()
        return os.statvfs_result((4096, 4096, 100, 50, 40, 10, 5, 5, 0, 255))

    return statvfs


def test_a_hanging_statvfs_is_marked_stuck_and_never_called_twice() -> None:
    """A stand-in statvfs that blocks on an Event, for machines where no FUSE mount can be made; the real
    blocking filesystem is the FUSE test below."""
    release, calls = threading.Event(), dict[str, int]()
    c = DiskCollector(
        roots=Roots.under(MACHINES / "large/t0"),
        statvfs=blocking_statvfs({"/home"}, release, calls),
        statvfs_deadline=0.1,
    )
    try:
        for _ in range(4):
            t = time.perf_counter()
            out = asyncio.run(c.collect())
            assert time.perf_counter() - t < 1.0
            assert (
                out["filesystems"]["/home"]["state"] == "stuck" and out["filesystems"]["/home"]["stuck"] == 1
            )
            assert out["filesystems"]["/data"]["state"] == "ok"
            assert c.statvfs.in_flight() == 1
        assert calls["/home"] == 1 and calls["/data"] == 4
        release.set()
        time.sleep(0.05)
        out = asyncio.run(c.collect())
        assert out["filesystems"]["/home"]["state"] == "ok" and calls["/home"] == 2
    finally:
        release.set()
        c.close()


@contextlib.contextmanager
def fuse_mount_without_server(mnt: Path) -> Iterator[int]:
    """A real FUSE filesystem whose server never answers: the /dev/fuse descriptor is never read, so the
    kernel's INIT stays unanswered and every request (statfs included) waits. Closing the descriptor
    aborts the connection and the waiters return ENOTCONN."""
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse (modprobe fuse)")
    require_root()
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"perfpulse-hung", str(mnt).encode(), b"fuse", 0, opts) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        require(False, f"cannot mount FUSE here: {os.strerror(err)}")
    try:
        yield fd
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        libc.umount2(str(mnt).encode(), 2)  # MNT_DETACH


def test_a_real_hung_fuse_mount_is_stuck_and_the_tick_stays_on_time(tmp_path: Path) -> None:
    mnt = tmp_path / "hung"
    mnt.mkdir()
    tree = copy_tree(MACHINES / "captured/t0", tmp_path / "tree")
    (tree / "proc/mounts").write_text(f"/dev/vda / ext4 rw 0 0\nperfpulse-hung {mnt} fuse rw 0 0\n")
    c = DiskCollector(roots=Roots.under(tree), statvfs_deadline=0.3)
    try:
        with fuse_mount_without_server(mnt) as fd:
            threads = None
            for _ in range(3):
                t = time.perf_counter()
                out = asyncio.run(c.collect())
                assert time.perf_counter() - t < 1.5
                fs = out["filesystems"]
                assert fs[str(mnt)]["state"] == "stuck"
                assert fs["/"]["state"] == "ok" and fs["/"]["size_bytes"] > 0
                assert c.statvfs.in_flight() == 1
                threads = threads or threading.active_count()
                assert threading.active_count() == threads  # no new thread per tick for the hung mount
            os.close(fd)  # the server "dies": the kernel aborts the connection, the hung call returns
            deadline = time.monotonic() + 5
            while c.statvfs.in_flight() and time.monotonic() < deadline:
                time.sleep(0.02)
            assert c.statvfs.in_flight() == 0
            out = asyncio.run(c.collect())
            assert out["filesystems"][str(mnt)]["state"] == "error"
            assert "not connected" in out["filesystems"][str(mnt)]["error"].lower()
    finally:
        c.close()


def test_this_machine() -> None:
    c = DiskCollector()
    try:
        asyncio.run(c.collect())
        with open("/proc/self/stat", "rb") as f:
            f.read()
        out = asyncio.run(c.collect())
    finally:
        c.close()
    assert out["available"] is True and out["devices"]
    assert out["filesystems"]["/"]["state"] == "ok" and out["filesystems"]["/"]["size_bytes"] > 0
    for dev in out["devices"].values():
        assert dev["read_bytes_per_second"] is not None and dev["read_bytes_per_second"] >= 0
        assert dev["utilization_ratio"] is None or 0 <= dev["utilization_ratio"] <= 1
    assert min(numbers(out)) >= 0


def _local_mount() -> str:
    from perfpulse.collectors._filesystems import LOCAL_FS

    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] in LOCAL_FS:
                return fields[1]
    require(False, f"no mount of a local disk filesystem ({', '.join(sorted(LOCAL_FS))}) on this machine")
    raise AssertionError  # unreachable: require() raised


def test_a_local_filesystem_is_asked_directly_and_a_stand_in_always_through_a_worker() -> None:
    """The real statvfs of an ext4/xfs/btrfs... mount answers from memory: no worker thread is started for
    it. The same mount point asked through any other function goes through its worker, since a stand-in
    may block on anything."""
    from perfpulse.collectors._filesystems import BoundedStatvfs

    mnt = _local_mount()
    direct = BoundedStatvfs(deadline=1.0)
    try:
        for _ in range(3):
            got = direct.query([mnt], local={mnt})[mnt]
            assert got.result is not None and got.error is None and got.stuck_for is None
            assert got.result.f_blocks == os.statvfs(mnt).f_blocks
        assert direct.workers() == 0, "a worker thread was started for a local filesystem"
        # Not in ``local`` (a network or FUSE type): bounded, one worker.
        assert direct.query([mnt])[mnt].result is not None
        assert direct.workers() == 1
    finally:
        direct.close()
    stand_in = BoundedStatvfs(lambda p: os.statvfs(p), deadline=1.0)
    try:
        assert stand_in.query([mnt], local={mnt})[mnt].result is not None
        assert stand_in.workers() == 1
    finally:
        stand_in.close()
