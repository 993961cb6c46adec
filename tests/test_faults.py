"""Injected faults at the Sampler level: whatever a source does, every tick arrives on time.

Real clock, real threads, real /proc. A filesystem whose statvfs(2) never returns is real where it can be
(a FUSE mount whose server never answers: needs root and /dev/fuse); where it cannot, and in the test
that combines every fault, it is simulated by a statvfs function blocked on an Event, and says so. A
collector that hangs is a FakeCollector blocked in a worker thread for 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import require, require_root

from perfpulse.collectors.aggregator import MetricsAggregator
from perfpulse.collectors.base import BaseCollector, Roots, registry
from perfpulse.model import Snapshot
from perfpulse.sampler import Sampler, build_collectors
from perfpulse.testing import FakeCollector

MACHINES = Path(__file__).parent / "fixtures" / "machines"
ON_TIME = 0.05  # seconds a tick may start after its grid point


def run_for(sampler: Sampler, ticks: int, check: object = None) -> list[tuple[Snapshot, float]]:
    """Run ``ticks`` ticks on the real clock; each Snapshot with the lateness of its tick."""
    got: list[tuple[Snapshot, float]] = []

    def sink(s: Snapshot) -> None:
        got.append((s, sampler.last_lateness))
        if len(got) >= ticks:
            sampler.stop()

    async def main() -> None:
        sampler.add_sink(sink, name="faults")
        await asyncio.wait_for(sampler.run(), ticks * sampler.interval + 30)
        await sampler.aclose()

    asyncio.run(main())
    return got


@pytest.fixture
def hung_statvfs() -> Iterator[threading.Event]:
    """A statvfs that blocks until the test ends (SIMULATED: a dead network filesystem cannot be built
    here without an NFS/FUSE server; the call blocks in a thread exactly as the kernel call would)."""
    release = threading.Event()
    yield release
    release.set()


def test_raising_hanging_and_blocking_collectors_never_delay_a_tick(hung_statvfs: threading.Event) -> None:
    def blocked_statvfs(path: str) -> os.statvfs_result:
        hung_statvfs.wait(60)
        return os.statvfs(path)

    class StatvfsCollector(BaseCollector):
        """Calls statvfs the naive way, in the shared thread pool: only the Sampler's deadline saves it."""

        name = "naive_df"

        async def collect(self) -> dict[str, object]:
            st = await asyncio.to_thread(blocked_statvfs, "/")
            return {"free": st.f_bfree}

        def close(self) -> None:
            # The mount "comes back" at shutdown: asyncio.run joins the pool's threads on exit, and
            # would otherwise wait out the whole 60 s (the reason the disk collector uses daemon threads).
            hung_statvfs.set()

    faulty: list[BaseCollector] = [
        FakeCollector("raises", raises=RuntimeError("parser bug")),
        FakeCollector("sleeps", delay=60.0, blocking=True),  # SIMULATED hang: blocked worker thread
        StatvfsCollector(),
        FakeCollector("fine", data=lambda n: {"n": n}),
    ]
    if "disk" in registry():
        faulty.append(registry()["disk"](statvfs=blocked_statvfs, statvfs_deadline=0.05))  # type: ignore[call-arg]
    sampler = Sampler(MetricsAggregator(faulty), interval=0.2)
    threads_before = threading.active_count()
    got = run_for(sampler, 12)

    late = [round(lateness, 3) for _, lateness in got]
    assert max(late) < ON_TIME, late
    assert sampler.skipped == 0
    for snap, _ in got:
        assert snap.meta["raises"].error == "RuntimeError: parser bug"
        assert snap.meta["sleeps"].stale and snap.meta["naive_df"].stale
        assert not snap.meta["fine"].stale and snap.data["fine"] == {"n": snap.seq}
    # One hung call per source, however many ticks went by.
    assert threading.active_count() <= threads_before + 8
    if "disk" in registry():
        last = got[-1][0]
        fs = last.data["disk"].get("filesystems", {})
        assert fs, "the disk collector reported no filesystems at all"
        assert all(v.get("stuck") == 1 for v in fs.values() if isinstance(v, dict)), fs


def test_a_hung_blocking_read_delays_the_collectors_queued_behind_it_only_briefly() -> None:
    """Collectors that are one blocking call share a worker thread per tick; one that hangs there (SIMULATED:
    a blocked Event.wait in that thread) must not make the ones after it stale, nor pile up threads."""
    before = FakeCollector("before", data=lambda n: {"n": n}, shared_worker=True)
    hung = FakeCollector("hung", delay=60.0, shared_worker=True)
    after = FakeCollector("after", data=lambda n: {"n": n}, shared_worker=True)
    broken = FakeCollector("broken", raises=ValueError("bad line 3"), shared_worker=True)
    sampler = Sampler(MetricsAggregator([before, hung, after, broken]), interval=0.2)
    threads_before = threading.active_count()
    got = run_for(sampler, 10)

    late = [round(lateness, 3) for _, lateness in got]
    assert max(late) < ON_TIME, late
    for snap, _ in got:
        assert snap.meta["hung"].stale
        assert not snap.meta["before"].stale and snap.data["before"] == {"n": snap.seq}
        assert not snap.meta["after"].stale and snap.data["after"] == {"n": snap.seq}
        assert snap.meta["broken"].error == "ValueError: bad line 3" and not snap.meta["broken"].stale
    assert hung.calls == 1 and hung.max_running == 1
    assert threading.active_count() <= threads_before + 8


def test_blocking_collectors_share_one_worker_thread_per_tick() -> None:
    """The point of the shared worker: one thread hand-off per tick, not one per collector."""
    fakes = [FakeCollector(f"c{i}", data={"i": i}, shared_worker=True) for i in range(6)]
    sampler = Sampler(MetricsAggregator(fakes), interval=0.1)
    got = run_for(sampler, 5)
    assert len(got) == 5
    main = threading.get_ident()
    for tick in range(5):
        idents = {f.threads[tick] for f in fakes}
        assert len(idents) == 1 and main not in idents, idents
    assert all(not snap.meta[f.name].stale for snap, _ in got for f in fakes)


def _spawn_storm(stop: threading.Event, per_second: int, counter: list[int]) -> None:
    """Start ``per_second`` processes a second that exit at once or after ~10 ms."""
    true, sleep = shutil.which("true") or "/bin/true", shutil.which("sleep") or "/bin/sleep"
    children: list[int] = []
    period = 1.0 / per_second
    next_at = time.monotonic()
    while not stop.is_set():
        argv = [true] if counter[0] % 2 else [sleep, "0.01"]
        children.append(os.posix_spawn(argv[0], argv, os.environ))
        counter[0] += 1
        # Reap what has exited so the storm does not leave zombies behind (they would be a test artefact).
        still = []
        for pid in children:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if not done:
                still.append(pid)
        children = still
        next_at += period
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    for pid in children:
        os.waitpid(pid, 0)


def test_short_lived_process_storm_with_the_real_collectors() -> None:
    """200 processes a second come and go while every real collector samples at 0.25 s."""
    collectors = build_collectors()
    sampler = Sampler(MetricsAggregator(collectors), interval=0.25)
    stop = threading.Event()
    spawned = [0]
    storm = threading.Thread(target=_spawn_storm, args=(stop, 200, spawned), daemon=True)
    t0 = time.monotonic()
    storm.start()
    try:
        got = run_for(sampler, 16)
    finally:
        stop.set()
        storm.join(10)
    elapsed = time.monotonic() - t0
    assert spawned[0] >= 100 * elapsed, f"only {spawned[0]} processes in {elapsed:.1f} s"
    assert len(got) == 16
    for snap, _ in got:
        for name, meta in snap.meta.items():
            assert meta.error is None or meta.stale, f"{name} failed under churn: {meta.error}"
    if "processes" in registry():
        fresh = [s for s, _ in got if not s.meta["processes"].stale and s.meta["processes"].available]
        assert fresh, "the processes collector never produced a fresh tick"


def _two_ticks(roots: Roots) -> Snapshot:
    sampler = Sampler(MetricsAggregator(build_collectors(roots)), interval=1.0)

    async def main() -> Snapshot:
        await sampler.tick()
        snap = await sampler.tick()
        await sampler.aclose()
        return snap

    return asyncio.run(main())


def test_missing_pressure_and_diskstats_make_only_those_unavailable(tmp_path: Path) -> None:
    source = MACHINES / "captured" / "t0"
    assert source.is_dir(), f"fixture tree {source} is missing"
    whole = tmp_path / "whole"
    shutil.copytree(source, whole, symlinks=True)
    cut = tmp_path / "cut"
    shutil.copytree(source, cut, symlinks=True)
    shutil.rmtree(cut / "proc" / "pressure")
    (cut / "proc" / "diskstats").unlink()

    full = _two_ticks(Roots.under(whole))
    partial = _two_ticks(Roots.under(cut))
    avail_full = {n for n, m in full.meta.items() if m.available}
    avail_partial = {n for n, m in partial.meta.items() if m.available}
    expected_gone = {"pressure", "disk"} & set(registry())
    assert expected_gone <= avail_full, "the captured fixture should have PSI and diskstats"
    assert avail_full - avail_partial == expected_gone
    for name in expected_gone:
        reason = partial.data[name].get("reason", "")
        assert reason, f"{name} unavailable without a reason"
    for name in avail_partial:
        assert partial.meta[name].error is None, f"{name}: {partial.meta[name].error}"


@contextlib.contextmanager
def hung_fuse_mount(where: Path) -> Iterator[int]:
    """Mount a FUSE filesystem and never serve it: nobody reads the /dev/fuse descriptor, so the kernel's
    INIT and every later request (statfs included) wait forever, exactly like a dead FUSE or network
    server. Closing the descriptor aborts the connection: the waiters get ENOTCONN and the mount is
    detached."""
    require_root()
    require(os.path.exists("/dev/fuse"), "needs /dev/fuse for a real hung filesystem (modprobe fuse)")
    libc = ctypes.CDLL(None, use_errno=True)
    dev = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    data = f"fd={dev},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"perfpulse-dead", str(where).encode(), b"fuse", 0, data) != 0:
        err = ctypes.get_errno()
        os.close(dev)
        require(False, f"cannot mount FUSE here: {os.strerror(err)}")
    try:
        yield dev
    finally:
        with contextlib.suppress(OSError):
            os.close(dev)
        libc.umount2(str(where).encode(), 2)  # MNT_DETACH


def test_a_real_hung_filesystem_never_delays_a_tick(tmp_path: Path) -> None:
    """statvfs on a real dead FUSE mount, called by the real disk collector (mount table naming it) and
    by a naive collector in the shared thread pool: ticks stay on the grid, one blocked call each."""
    mnt = tmp_path / "dead"
    mnt.mkdir()
    tree = tmp_path / "tree"
    shutil.copytree(MACHINES / "captured" / "t0", tree, symlinks=True)
    (tree / "proc" / "mounts").write_text(f"/dev/vda / ext4 rw 0 0\nperfpulse-dead {mnt} fuse rw 0 0\n")
    statvfs_calls = [0]

    class NaiveDf(BaseCollector):
        name = "naive_df"

        async def collect(self) -> dict[str, object]:
            statvfs_calls[0] += 1
            st = await asyncio.to_thread(os.statvfs, str(mnt))
            return {"free": st.f_bfree}

    with hung_fuse_mount(mnt) as dev:
        collectors: list[BaseCollector] = [NaiveDf(), FakeCollector("fine", data=lambda n: {"n": n})]
        if "disk" in registry():
            collectors.append(registry()["disk"](roots=Roots.under(tree), statvfs_deadline=0.05))  # type: ignore[call-arg]
        sampler = Sampler(MetricsAggregator(collectors), interval=0.2)

        got: list[tuple[Snapshot, float]] = []

        def sink(s: Snapshot) -> None:
            got.append((s, sampler.last_lateness))
            if len(got) >= 10:
                sampler.stop()

        async def main() -> None:
            sampler.add_sink(sink, name="faults")
            await asyncio.wait_for(sampler.run(), 30)
            os.close(dev)  # the server "dies": the hung statvfs calls return ENOTCONN
            await sampler.aclose()

        asyncio.run(main())

    late = [round(lateness, 3) for _, lateness in got]
    assert max(late) < ON_TIME, late
    assert statvfs_calls[0] == 1  # one hung call, never a second one piled on it
    for snap, _ in got:
        assert snap.meta["naive_df"].stale and not snap.meta["fine"].stale
    if "disk" in registry():
        fs = got[-1][0].data["disk"]["filesystems"]
        assert fs[str(mnt)]["stuck"] == 1 and fs["/"]["stuck"] == 0
