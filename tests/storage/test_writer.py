"""The writer thread and its buffer, against real SQLite files: a real lock held by a second connection,
a real full filesystem (a 2 MiB tmpfs, root only)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gen import KEYS, T0, ticks
from support import require, require_root, require_tool

from perfpulse.model import CollectorMeta, MetricSpec, Snapshot
from perfpulse.storage import Tick
from perfpulse.storage import query as q
from perfpulse.storage.history import History
from perfpulse.storage.sqlite import SQLiteStore
from perfpulse.storage.writer import StoreWriter, snapshot_to_tick


def _raw_ts(store: SQLiteStore, key: str, end: int) -> list[int]:
    (s,) = store.resolve("h1", [key])
    return [t for ts, _ in store.iter_raw(s, 0, end) for t in ts]


def _wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_snapshot_to_tick_uses_the_catalogue_and_skips_stale_collectors() -> None:
    cat = {
        "cpu": [
            MetricSpec("cpu_core_utilization_ratio", "ratio", "gauge", "d", "per_core.*.total", ("cpu",))
        ],
        "mem": [MetricSpec("memory_used_bytes", "bytes", "gauge", "d", "used")],
    }
    snap = Snapshot(
        host="h1",
        wall_time=T0 / 1000 + 0.0004,
        monotonic=1.0,
        seq=1,
        interval=1.0,
        data={"cpu": {"per_core": {"0": {"total": 0.5}, "1": {"total": None}}}, "mem": {"used": 10}},
        meta={"cpu": CollectorMeta(T0 / 1000, 1.0), "mem": CollectorMeta(T0 / 1000, 1.0, stale=True)},
    )
    tick = snapshot_to_tick(snap, cat)
    assert tick.ts_ms == T0
    assert list(tick.samples) == [('cpu_core_utilization_ratio{cpu="0"}', 0.5)]
    assert tick.units["cpu_core_utilization_ratio"] == "ratio"


def test_history_sink_writes_every_tick(tmp_path: Path) -> None:
    cat = {"mem": [MetricSpec("memory_used_bytes", "bytes", "gauge", "d", "used")]}
    hist = History(SQLiteStore(tmp_path / "perfpulse.db", host="h1"), catalogue=lambda: cat)
    try:
        for i in range(50):
            # the Sampler may name the host differently; the store's own name is the one recorded
            snap = Snapshot(
                "h1.example",
                T0 / 1000 + i,
                float(i),
                i,
                1.0,
                {"mem": {"used": i}},
                {"mem": CollectorMeta(0, 0)},
            )
            hist.sink(snap)
        assert hist.writer.wait_idle(10)
        assert hist.stats.written_ticks == 50 and hist.stats.dropped_samples == 0
        assert _raw_ts(hist.store, "memory_used_bytes", T0 + 100_000) == [T0 + 1000 * i for i in range(50)]
        assert hist.store.list_series()[0].unit == "bytes"
    finally:
        hist.close()


@pytest.fixture
def locked_store(tmp_path: Path) -> Iterator[tuple[SQLiteStore, sqlite3.Connection]]:
    store = SQLiteStore(tmp_path / "perfpulse.db", host="h1", busy_timeout_ms=20)
    other = sqlite3.connect(tmp_path / "perfpulse.db", isolation_level=None)
    yield store, other
    other.close()
    store.close()


def test_locked_database_buffers_then_writes_in_order(
    locked_store: tuple[SQLiteStore, sqlite3.Connection],
) -> None:
    store, other = locked_store
    writer = StoreWriter(store, capacity_samples=10_000, backoff_initial=0.02, backoff_max=0.1)
    writer.start()
    try:
        all_ticks = list(ticks(200, interval_ms=1000))
        writer.submit(all_ticks[0])
        assert writer.wait_idle(5)
        other.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        for t in all_ticks[1:]:
            writer.submit(t)
        _wait(lambda: writer.stats.pending_ticks == 199 and not writer.stats.healthy)
        assert "locked" in (writer.stats.last_error or "")
        time.sleep(0.3)  # several retries with backoff, all failing
        other.execute("ROLLBACK")
        assert writer.wait_idle(10)
        s = writer.stats
        assert s.healthy and s.dropped_samples == 0 and s.written_ticks == 200
        assert _raw_ts(store, KEYS[0], T0 + 10**6) == [t.ts_ms for t in all_ticks]
    finally:
        writer.stop()


def test_overflow_drops_the_oldest_and_counts_them(
    locked_store: tuple[SQLiteStore, sqlite3.Connection],
) -> None:
    store, other = locked_store
    capacity = 60 * len(KEYS)  # sixty ticks
    writer = StoreWriter(store, capacity_samples=capacity, backoff_initial=0.02, backoff_max=0.05)
    writer.start()
    try:
        all_ticks = list(ticks(100, interval_ms=1000))
        other.execute("BEGIN EXCLUSIVE")
        for t in all_ticks:
            writer.submit(t)
        _wait(lambda: writer.stats.pending_ticks == 60)
        assert writer.stats.dropped_samples == 40 * len(KEYS)
        assert writer.stats.pending_samples == capacity
        other.execute("ROLLBACK")
        assert writer.wait_idle(10)
        assert _raw_ts(store, KEYS[0], T0 + 10**6) == [t.ts_ms for t in all_ticks[40:]]
        names = {n: v for n, _, v in writer.prometheus_samples()}
        assert names["perfpulse_store_dropped_samples_total"] == 40 * len(KEYS)
    finally:
        writer.stop()


def test_stop_flushes_what_is_buffered(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "perfpulse.db", host="h1")
    writer = StoreWriter(store)
    writer.start()
    all_ticks = list(ticks(500, interval_ms=1000))
    for t in all_ticks:
        writer.submit(t)
    writer.stop()
    assert _raw_ts(store, KEYS[1], T0 + 10**6) == [t.ts_ms for t in all_ticks]
    store.close()


@pytest.mark.root
def test_full_disk_reports_and_resumes_without_corruption(tmp_path: Path) -> None:
    require_root()
    require_tool("mount")
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    require(
        done.returncode == 0, f"needs to mount a 2 MiB tmpfs (root with CAP_SYS_ADMIN): {done.stderr.strip()}"
    )
    try:
        store = SQLiteStore(mnt / "perfpulse.db", host="h1", busy_timeout_ms=50)
        # (retention off: the generated ticks are months old)
        writer = StoreWriter(
            store, capacity_samples=10**7, backoff_initial=0.02, backoff_max=0.1, retention_every=3600
        )
        writer.start()
        wide = [f"s{i}" for i in range(400)]
        sent: list[Tick] = []
        try:
            for i in range(2000):
                t = Tick("h1", T0 + i * 1000, [(k, float(i * 1000 + j) + 0.123) for j, k in enumerate(wide)])
                sent.append(t)
                writer.submit(t)
                if not writer.stats.healthy:
                    break
                if i % 50 == 0:
                    writer.wait_idle(5)
            _wait(lambda: not writer.stats.healthy, 20)
            err = writer.stats.last_error or ""
            assert "full" in err, err
            # keep sending while the disk is full: nothing is lost within the buffer
            for i in range(len(sent), len(sent) + 30):
                t = Tick("h1", T0 + i * 1000, [(k, float(i)) for k in wide])
                sent.append(t)
                writer.submit(t)
            subprocess.run(["mount", "-o", "remount,size=200m", str(mnt)], check=True)
            assert writer.wait_idle(30), writer.stats
            assert writer.stats.healthy and writer.stats.dropped_samples == 0
        finally:
            writer.stop()
            store.close()
        store = SQLiteStore(mnt / "perfpulse.db", host="h1")
        assert store.integrity_check() == "ok"
        assert _raw_ts(store, "s7", T0 + 10**8) == [t.ts_ms for t in sent]
        end = sent[-1].ts_ms + 1
        r = q.history(store, host="h1", keys=["s399"], start=T0, end=end, points=10, now_ms=end)
        assert sum(1 for v in r["series"][0]["avg"] if v is not None) >= 1
        store.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        os.sync()


def test_retention_runs_in_the_background(tmp_path: Path) -> None:
    """With a one-hour raw retention, months-old generated data is expired by the writer thread itself,
    a bounded batch at a time."""
    from perfpulse.storage import Retention

    store = SQLiteStore(
        tmp_path / "perfpulse.db", host="h1", retention=Retention(raw=3600, minute=3600, hour=3600)
    )
    store.write(list(ticks(3000, interval_ms=1000)))
    with store._reader() as conn:
        assert conn.execute("SELECT COUNT(*) FROM hist_1m")[0][0] > 0
    writer = StoreWriter(store, retention_every=0.05)
    writer.start()
    try:

        def empty() -> bool:
            with store._reader() as conn:
                return all(
                    conn.execute(f"SELECT COUNT(*) FROM {t}")[0][0] == 0
                    for t in ("hist_raw", "hist_1m", "hist_1h")
                )

        _wait(empty, 20)
        assert writer.stats.retention_deleted_rows > 0
    finally:
        writer.stop()
        store.close()


def test_handoff_is_bounded_while_a_write_hangs(tmp_path: Path) -> None:
    """The writer thread blocks inside one write (a real lock, a long busy timeout); what is submitted
    meanwhile waits in a bounded hand-off queue whose overflow is counted like the buffer's."""
    store = SQLiteStore(tmp_path / "perfpulse.db", host="h1", busy_timeout_ms=3000)
    other = sqlite3.connect(tmp_path / "perfpulse.db", isolation_level=None)
    writer = StoreWriter(store, max_handoff=5, backoff_initial=0.01)
    writer.start()
    try:
        all_ticks = list(ticks(21, interval_ms=1000))
        other.execute("BEGIN EXCLUSIVE")
        writer.submit(all_ticks[0])
        _wait(lambda: not writer._handoff)  # taken: the writer now waits for the lock
        time.sleep(0.05)
        for t in all_ticks[1:]:
            writer.submit(t)
        assert writer.stats.dropped_samples == 15 * len(KEYS)
        other.execute("ROLLBACK")
        assert writer.wait_idle(10)
        assert _raw_ts(store, KEYS[0], T0 + 10**6) == [all_ticks[0].ts_ms] + [t.ts_ms for t in all_ticks[16:]]
    finally:
        writer.stop()
        other.close()
        store.close()


def test_a_snapshot_that_cannot_be_converted_is_skipped(tmp_path: Path) -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("broken catalogue")

    store = SQLiteStore(tmp_path / "perfpulse.db", host="h1")
    writer = StoreWriter(store)
    writer.start()
    try:
        snap = Snapshot("h1", T0 / 1000, 0.0, 0, 1.0, {}, {})
        writer.submit((snap, Broken()))
        writer.submit(next(ticks(1, start=T0 + 1000)))
        assert writer.wait_idle(5)
        assert writer.stats.written_ticks == 1  # the thread survived and went on
    finally:
        writer.stop()
        store.close()
