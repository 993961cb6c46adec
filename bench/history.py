"""History storage: ingest rate, bytes on disk per raw sample, and query latency, against the original
design measured in the same run (one JSON document per collector per tick in a table, bucketed in Python).

    .venv/bin/python -m bench.history [--quick] [--recording FILE] [--pg-dsn DSN]

PostgreSQL: ``--pg-dsn`` or ``PERFPULSE_BENCH_PG_DSN``; otherwise, as root with PostgreSQL 15 installed, a
throwaway cluster is started (and removed) the way the test suite does it; without either the PostgreSQL
rows are skipped. ``--recording`` replays ticks recorded from a real machine (JSON lines ``{"ts": ms,
"s": [[key, value], ...]}``, as ``--record N FILE`` writes them with the default collectors at 1 Hz) for
the bytes-per-sample figure on real data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pwd
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from perfpulse.storage import Tick
from perfpulse.storage import query as q
from perfpulse.storage.engine import SqlStore
from perfpulse.storage.sqlite import SQLiteStore
from perfpulse.storage.writer import StoreWriter

DAY = 86_400_000
HOUR = 3_600_000
NOW = 1_767_225_600_000 + 40 * DAY  # a fixed "now": 2026-02-10


# -- data --------------------------------------------------------------------------------------------------
def typical_keys(n: int) -> list[str]:
    """Series named as the catalogue names them; the kind cycles through the mix of typical_value."""
    return [f'bench_series_{i % 8}{{n="{i}"}}' for i in range(n)]


def typical_value(i: int, tick: int, rng: random.Random) -> float:
    """A mix like a monitoring host's: idle counters at 0, constant capacities, integer gauges that drift,
    ratios from jiffy counts (k/100 per CPU), byte rates, and a slow float (load average)."""
    kind = i % 8
    if kind in (0, 1):  # idle rates, mostly zero
        return 0.0 if rng.random() < 0.95 else float(rng.randint(1, 50) * 4096)
    if kind == 2:  # capacity, constant
        return 16_000_000_000.0
    if kind == 3:  # used bytes, page-granular drift
        return float(8_000_000_000 + 4096 * ((tick * 13 + i) % 20_000))
    if kind == 4:  # utilization from jiffies
        return rng.randint(0, 100) / 100
    if kind == 5:  # a byte rate measured over a monotonic interval: full-precision float
        return rng.randint(0, 10_000_000) / (1.0 + rng.random() * 0.001)
    if kind == 6:  # a count
        return float(200 + (tick // 30 + i) % 7)
    return round(1.0 + math.sin(tick / 600 + i), 2)  # load average, as /proc prints it


def gen_ticks(keys: list[str], start: int, n: int, interval_ms: int, seed: int = 1) -> Iterator[Tick]:
    rng = random.Random(seed)
    for t in range(n):
        ts = start + t * interval_ms + rng.randint(0, 2)  # wall-clock jitter of a real tick
        yield Tick("bench", ts, [(k, typical_value(i, t, rng)) for i, k in enumerate(keys)])


def load_recording(path: Path) -> list[tuple[int, list[tuple[str, float]]]]:
    out = []
    for line in path.read_bytes().splitlines():
        rec = orjson.loads(line)
        out.append((int(rec["ts"]), [(str(k), float(v)) for k, v in rec["s"]]))
    return out


def replay(rec: list[tuple[int, list[tuple[str, float]]]], start: int, n: int) -> Iterator[Tick]:
    """The recording, looped to n ticks at its own pace (timestamps shifted to start)."""
    base = rec[0][0]
    span = rec[-1][0] - base + 1000
    for t in range(n):
        ts, samples = rec[t % len(rec)]
        yield Tick("bench", start + (t // len(rec)) * span + ts - base, samples)


async def record(n: int, path: Path, pace: float) -> None:
    """Ticks of the default collectors on this machine, taken every ``pace`` seconds and stamped one
    second apart (plus the real wall-clock jitter of each tick), so a short recording stands for n
    seconds of a 1 Hz daemon. Rates are then over ``pace`` rather than 1 s: noisier, so harder to
    compress, not easier."""
    from perfpulse.sampler import build_default
    from perfpulse.storage.writer import snapshot_to_tick

    sampler = build_default(interval=1.0)
    cat = sampler.catalogue()
    await sampler.tick()
    t0 = time.monotonic()
    first = round(time.time() * 1000)
    with path.open("wb") as f:
        for i in range(n):
            due = t0 + (i + 1) * pace
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            jitter = round((time.monotonic() - due) * 1000)
            tick = snapshot_to_tick(await sampler.tick(), cat)
            ts = first + i * 1000 + jitter
            f.write(orjson.dumps({"ts": ts, "s": [list(s) for s in tick.samples]}) + b"\n")
    await sampler.aclose()


# -- the original design -----------------------------------------------------------------------------------
class JsonBaseline:
    """One row per collector per tick holding the collector's JSON document; queries load every document
    in range and bucket in Python."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(
            "CREATE TABLE snapshots (ts REAL NOT NULL, collector TEXT NOT NULL, doc TEXT NOT NULL)"
        )
        self.db.execute("CREATE INDEX snapshots_ts ON snapshots (collector, ts)")

    def write(self, tick: Tick, groups: int = 8) -> None:
        docs: dict[str, dict[str, float]] = {}
        for i, (k, v) in enumerate(tick.samples):
            docs.setdefault(f"c{i % groups}", {})[k] = v
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT INTO snapshots VALUES (?, ?, ?)",
            [(tick.ts_ms / 1000, c, json.dumps(d)) for c, d in docs.items()],
        )
        self.db.execute("COMMIT")

    def query(
        self, collector: str, key: str, start: int, end: int, points: int
    ) -> list[tuple[float, float, float] | None]:
        step = max(1, -(-(end - start) // points))
        buckets: dict[int, list[float]] = {}
        for ts, doc in self.db.execute(
            "SELECT ts, doc FROM snapshots WHERE collector = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (collector, start / 1000, end / 1000),
        ):
            v = json.loads(doc).get(key)
            if v is not None:
                buckets.setdefault(int((ts * 1000 - start) // step), []).append(v)
        return [
            (min(b), sum(b) / len(b), max(b)) if (b := buckets.get(i)) else None
            for i in range(-(-(end - start) // step))
        ]

    def raw(self, collector: str, key: str, start: int, end: int) -> list[tuple[float, float]]:
        out = []
        for ts, doc in self.db.execute(
            "SELECT ts, doc FROM snapshots WHERE collector = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (collector, start / 1000, end / 1000),
        ):
            v = json.loads(doc).get(key)
            if v is not None:
                out.append((ts, v))
        return out

    def close(self) -> None:
        self.db.close()


# -- PostgreSQL --------------------------------------------------------------------------------------------
class ThrowawayPg:
    BIN = Path("/usr/lib/postgresql/15/bin")

    def __init__(self) -> None:
        pw = pwd.getpwnam("postgres")
        self.base = Path(tempfile.mkdtemp(prefix="perfpulse-bench-pg-"))
        os.chown(self.base, pw.pw_uid, pw.pw_gid)
        self._as_pg(
            str(self.BIN / "initdb"),
            "-D",
            str(self.base / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # Default durability settings (fsync on): the bench measures what a real deployment gets.
        self._as_pg(
            str(self.BIN / "pg_ctl"),
            "-D",
            str(self.base / "data"),
            "-l",
            str(self.base / "log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1",
            "start",
        )
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_pg(self, *cmd: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *cmd], check=True, capture_output=True, timeout=120
        )

    def close(self) -> None:
        self._as_pg(str(self.BIN / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def pg_dsn(arg: str | None) -> tuple[str | None, ThrowawayPg | None]:
    dsn = arg or os.environ.get("PERFPULSE_BENCH_PG_DSN")
    if dsn:
        return dsn, None
    if os.geteuid() == 0 and (ThrowawayPg.BIN / "initdb").exists():
        pg = ThrowawayPg()
        return pg.dsn, pg
    return None, None


def fresh_pg_db(dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return dsn.rsplit("/", 1)[0] + "/" + name


# -- measurements ------------------------------------------------------------------------------------------
def ingest(store: SqlStore, source: Iterator[Tick]) -> tuple[float, int]:
    """Samples per second through the production path (StoreWriter, one transaction per tick)."""
    writer = StoreWriter(store, capacity_samples=10**8, retention_every=10**6, maintenance_every=10**6)
    writer.start()
    n = 0
    t0 = time.perf_counter()
    for tick in source:
        writer.submit(tick)
        n += len(tick.samples)
        # A daemon's ticks arrive one at a time; do not let the writer batch a whole backlog.
        writer.wait_idle()
    writer.stop()
    return n / (time.perf_counter() - t0), n


def ingest_baseline(base: JsonBaseline, source: Iterator[Tick]) -> float:
    n = 0
    t0 = time.perf_counter()
    for tick in source:
        base.write(tick)
        n += len(tick.samples)
    return n / (time.perf_counter() - t0)


def p95(fn: Callable[[int], Any], runs: int) -> tuple[float, float]:
    times = []
    for r in range(runs):
        t0 = time.perf_counter()
        fn(r)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, math.ceil(0.95 * len(times)) - 1)]


def file_bytes(path: Path) -> int:
    """The database file and its WAL, if one is left."""
    return sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def tier_sizes(store: SqlStore) -> tuple[float, float]:
    """(bytes per raw sample in hist_raw, bytes per 1-minute rollup row), from the pages each table and
    its index use (PostgreSQL: table, TOAST and indexes)."""
    store.maintenance()
    sizes = store.size_bytes()
    with store._reader() as conn:
        raw_n = int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM hist_raw")[0][0])
        m1_n = int(conn.execute("SELECT COUNT(*) FROM hist_1m")[0][0])
    raw_bytes = sum(v for k, v in sizes.items() if k in ("hist_raw", "sqlite_autoindex_hist_raw_1"))
    m1_bytes = sum(v for k, v in sizes.items() if k in ("hist_1m", "sqlite_autoindex_hist_1m_1"))
    return raw_bytes / max(1, raw_n), m1_bytes / max(1, m1_n)


def steady_state_mb(raw_bps: float, m1_bpr: float) -> float:
    """Disk per series at 1 Hz with the default retention (48 h raw, 90 d of minutes, 2 y of hours;
    an hour row costs about what a minute row does)."""
    return (172_800 * raw_bps + 129_600 * m1_bpr + 17_520 * m1_bpr) / 1e6


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.history")
    ap.add_argument("--quick", action="store_true", help="smaller data sets (a smoke run, not the figures)")
    ap.add_argument("--recording", type=Path, help="ticks recorded from a real machine (JSON lines)")
    ap.add_argument(
        "--record", nargs=2, metavar=("TICKS", "FILE"), help="record TICKS ticks of this machine and exit"
    )
    ap.add_argument("--pace", type=float, default=1.0, help="seconds between recorded ticks (default 1)")
    ap.add_argument("--pg-dsn", help="PostgreSQL to measure (default: a throwaway cluster when root)")
    args = ap.parse_args(argv)
    if args.record:
        asyncio.run(record(int(args.record[0]), Path(args.record[1]), args.pace))
        return
    quick = args.quick
    work = Path(tempfile.mkdtemp(prefix="perfpulse-bench-"))
    rows: list[tuple[str, str, str, str]] = []
    try:
        # 1. ingest ---------------------------------------------------------------------------------------
        n_series = 1000
        n_ticks = 120 if quick else 660  # 11 minutes at 1 s: two chunk closes, eleven minute closes
        keys = typical_keys(n_series)
        start = NOW - DAY
        lite = SQLiteStore(work / "ingest.db", host="bench")
        rate, n = ingest(lite, gen_ticks(keys, start, n_ticks, 1000))
        raw_b, m1_b = tier_sizes(lite)
        lite.close()
        base = JsonBaseline(work / "ingest-baseline.db")
        base_rate = ingest_baseline(base, gen_ticks(keys, start, n_ticks, 1000))
        base.close()
        base_bps = file_bytes(work / "ingest-baseline.db") / n
        rows.append(
            (
                "sustained ingest, SQLite (1,000 series, 1 transaction per tick)",
                f"{rate:,.0f} samples/s",
                f"{base_rate:,.0f} samples/s",
                f"{rate / base_rate:.2f}x",
            )
        )
        rows.append(
            (
                "bytes on disk per raw sample, synthetic typical mix (SQLite)",
                f"{raw_b:.2f}",
                f"{base_bps:.2f}",
                f"{base_bps / raw_b:.0f}x smaller",
            )
        )
        rows.append(
            (
                "1-minute rollup row; disk per series at 1 Hz (raw 48 h + 1m 90 d + 1h 2 y)",
                f"{m1_b:.1f} B/row; {steady_state_mb(raw_b, m1_b):.1f} MB per series",
                f"{base_bps * 86_400 / 1e6:.1f} MB per series per day kept",
                "-",
            )
        )
        if args.recording:
            rec = load_recording(args.recording)
            lite = SQLiteStore(work / "recording.db", host="bench")
            r_ticks = min(len(rec), 120 if quick else 700)
            _, rn = ingest(lite, replay(rec, start, r_ticks))
            raw_r, _ = tier_sizes(lite)
            lite.close()
            base = JsonBaseline(work / "rec-baseline.db")
            ingest_baseline(base, replay(rec, start, r_ticks))
            base.close()
            rb = file_bytes(work / "rec-baseline.db") / rn
            per_tick = statistics.mean(len(s) for _, s in rec)
            rows.append(
                (
                    f"bytes on disk per raw sample, this machine recorded ({per_tick:.0f} series, SQLite)",
                    f"{raw_r:.2f}",
                    f"{rb:.2f}",
                    f"{rb / raw_r:.0f}x smaller",
                )
            )

        dsn, cluster = pg_dsn(args.pg_dsn)
        try:
            if dsn:
                from perfpulse.storage.postgres import PostgresStore

                pg = PostgresStore(fresh_pg_db(dsn, "bench_ingest"), host="bench")
                pg_rate, _ = ingest(pg, gen_ticks(keys, start, n_ticks, 1000))
                pg_raw, pg_m1 = tier_sizes(pg)
                pg.close()
                rows.append(
                    (
                        "sustained ingest, PostgreSQL 15 (1,000 series, 1 transaction per tick)",
                        f"{pg_rate:,.0f} samples/s",
                        "-",
                        "-",
                    )
                )
                rows.append(
                    (
                        "bytes per raw sample / per 1-minute row, PostgreSQL (table + index)",
                        f"{pg_raw:.2f} / {pg_m1:.0f}",
                        "-",
                        "-",
                    )
                )
        finally:
            if cluster is not None:
                cluster.close()

        # 2. queries: 30 days at 10 s for 10 series in 2 collectors ------------------------------------------
        q_keys = typical_keys(10)
        days = 6 if quick else 30
        interval = 10_000
        n_q = days * DAY // interval
        qstart = NOW - days * DAY
        lite = SQLiteStore(work / "query.db", host="bench")
        batch: list[Tick] = []
        for t in gen_ticks(q_keys, qstart, n_q, interval, seed=3):
            batch.append(t)
            if len(batch) == 5000:
                lite.write(batch)
                batch.clear()
        lite.write(batch)
        base = JsonBaseline(work / "query-baseline.db")
        base.db.execute("BEGIN")
        for t in gen_ticks(q_keys, qstart, n_q, interval, seed=3):
            docs: dict[str, dict[str, float]] = {}
            for i, (k, v) in enumerate(t.samples):
                docs.setdefault(f"c{i % 2}", {})[k] = v
            base.db.executemany(
                "INSERT INTO snapshots VALUES (?, ?, ?)",
                [(t.ts_ms / 1000, c, json.dumps(d)) for c, d in docs.items()],
            )
        base.db.execute("COMMIT")
        key = q_keys[4]
        rng = random.Random(5)
        runs = 10 if quick else 30

        def ours_30d(_r: int) -> None:
            end = NOW - rng.randint(0, 3600) * 1000
            q.history(
                lite, host="bench", keys=[key], start=end - days * DAY, end=end, points=1000, now_ms=NOW
            )

        def base_30d(_r: int) -> None:
            end = NOW - rng.randint(0, 3600) * 1000
            base.query("c0", key, end - days * DAY, end, 1000)

        med, p = p95(ours_30d, runs)
        bmed, bp = p95(base_30d, max(3, runs // 5))
        rows.append(
            (
                f"{days}-day 1,000-point query, one series (10 s data)",
                f"p50 {med:.1f} ms, p95 {p:.1f} ms",
                f"p50 {bmed:.0f} ms, p95 {bp:.0f} ms",
                f"{bp / p:.0f}x",
            )
        )
        lite.close()
        base.close()

        # 3. 24 h raw at 1 s ------------------------------------------------------------------------------
        n_raw = DAY // 1000 if not quick else DAY // 4000
        lite = SQLiteStore(work / "raw.db", host="bench")
        base = JsonBaseline(work / "raw-baseline.db")
        rstart = NOW - DAY
        batch = []
        for t in gen_ticks(q_keys, rstart, n_raw, 1000, seed=4):
            batch.append(t)
            if len(batch) == 5000:
                lite.write(batch)
                batch.clear()
        lite.write(batch)
        base.db.execute("BEGIN")
        for t in gen_ticks(q_keys, rstart, n_raw, 1000, seed=4):
            docs = {}
            for i, (k, v) in enumerate(t.samples):
                docs.setdefault(f"c{i % 2}", {})[k] = v
            base.db.executemany(
                "INSERT INTO snapshots VALUES (?, ?, ?)",
                [(t.ts_ms / 1000, c, json.dumps(d)) for c, d in docs.items()],
            )
        base.db.execute("COMMIT")
        got = q.history(lite, host="bench", keys=[key], start=rstart, end=NOW, points=100_000, now_ms=NOW)
        assert got["tier"] == "raw" and got["series"][0]["resolution"] == "raw"
        n_points = len(got["series"][0]["t"])

        def ours_raw(_r: int) -> None:
            q.history(lite, host="bench", keys=[key], start=rstart, end=NOW, points=100_000, now_ms=NOW)

        def base_raw(_r: int) -> None:
            base.raw("c0", key, rstart, NOW)

        med, p = p95(ours_raw, runs)
        bmed, bp = p95(base_raw, max(3, runs // 5))
        rows.append(
            (
                f"24 h raw query, one series at 1 s ({n_points:,} points)",
                f"p50 {med:.1f} ms, p95 {p:.1f} ms",
                f"p50 {bmed:.0f} ms, p95 {bp:.0f} ms",
                f"{bp / p:.1f}x",
            )
        )
        lite.close()
        base.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("| measurement | perfpulse history | original design (JSON per collector per tick) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
