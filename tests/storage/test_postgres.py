"""PostgreSQL-specific behaviour: the same answers as SQLite for a generated week, and riding out a
server that goes away (stopped for real, not mocked)."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest
from gen import KEYS, T0, ticks
from pg_cluster import PgCluster

from perfpulse.storage import Tick
from perfpulse.storage import query as q
from perfpulse.storage.postgres import PostgresStore
from perfpulse.storage.sqlite import SQLiteStore
from perfpulse.storage.writer import StoreWriter

DAY = 86_400_000


def test_a_generated_week_gives_identical_answers(tmp_path: Path, pg_dsn: str) -> None:
    """A week at 10 s for six series, bulk-loaded through the Store API into both databases.

    Values are multiples of 1/1024 or integers (see gen.py), so SUM() gives the same bits whatever
    order an engine adds them in; with that, every answer must be equal, not merely close.
    """
    week = list(ticks(7 * 8640, interval_ms=10_000))
    lite = SQLiteStore(tmp_path / "perfpulse.db", host="h1")
    pg = PostgresStore(pg_dsn, host="h1")
    try:
        for store in (lite, pg):
            for i in range(0, len(week), 5000):
                store.write(week[i : i + 5000])
        now = week[-1].ts_ms + 1
        cases = [
            (T0, now, 500),  # the week, 1h tier
            (T0, now, 5000),  # the week, 1m tier
            (now - 2 * DAY, now, 1000),  # two days, 1m tier
            (now - 6 * 3_600_000, now, 300),  # raw, bucketed
            (now - 3_600_000, now, 1000),  # raw samples
            (T0 + 3 * DAY + 17_000, T0 + 4 * DAY - 33_000, 97),  # odd edges
            (T0 - DAY, T0 + DAY, 48),  # partly before the data
        ]
        for start, end, points in cases:
            a = q.history(lite, host="h1", keys=list(KEYS), start=start, end=end, points=points, now_ms=now)
            b = q.history(pg, host="h1", keys=list(KEYS), start=start, end=end, points=points, now_ms=now)
            assert a == b, (start, end, points)
            assert any(v is not None for v in a["series"][0]["avg"])
        for baseline in ("previous", "yesterday", "last_week"):
            a = q.compare(
                lite,
                host="h1",
                keys=list(KEYS),
                start=now - DAY,
                end=now,
                points=200,
                baseline=baseline,
                now_ms=now,
            )
            b = q.compare(
                pg,
                host="h1",
                keys=list(KEYS),
                start=now - DAY,
                end=now,
                points=200,
                baseline=baseline,
                now_ms=now,
            )
            assert a == b, baseline
        ea = b"".join(q.export(lite, host="h1", keys=None, start=now - DAY, end=now, tier="raw", now_ms=now))
        eb = b"".join(q.export(pg, host="h1", keys=None, start=now - DAY, end=now, tier="raw", now_ms=now))
        assert ea == eb and ea.count(b"\n") == 1 + 8640 * len(KEYS)
        assert [s.key for s in lite.list_series()] == [s.key for s in pg.list_series()]
    finally:
        lite.close()
        pg.close()


def test_two_daemons_share_one_database(pg_dsn: str) -> None:
    a = PostgresStore(pg_dsn, host="alpha")
    b = PostgresStore(pg_dsn, host="beta")
    try:
        a.write(list(ticks(500, interval_ms=1000, host="alpha")))
        b.write(list(ticks(500, interval_ms=1000, host="beta", seed=99)))
        assert a.hosts() == ["alpha", "beta"]
        end = T0 + 500_000
        ra = q.history(a, host="alpha", keys=[KEYS[0]], start=T0, end=end, points=100, now_ms=end)
        rb = q.history(a, host="beta", keys=[KEYS[0]], start=T0, end=end, points=100, now_ms=end)
        assert ra["series"][0]["avg"] != rb["series"][0]["avg"]
        assert rb == q.history(b, host="beta", keys=[KEYS[0]], start=T0, end=end, points=100, now_ms=end)
    finally:
        a.close()
        b.close()


def _wait(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_postgres_stopped_for_60_s_loses_nothing(pg_cluster: PgCluster, pg_dsn: str) -> None:
    """The cluster is stopped (pg_ctl stop) for 60 s while ticks keep coming at 10 per second."""
    if not pg_cluster.owned:
        pytest.skip("needs the fixture's own cluster to stop and start it")
    store = PostgresStore(pg_dsn, host="h1", connect_timeout=2)
    writer = StoreWriter(
        store, capacity_samples=200_000, backoff_initial=0.2, backoff_max=2.0, retention_every=3600
    )
    writer.start()
    sent: list[int] = []
    wide = [f"pg_series_{i}" for i in range(50)]
    i = 0

    def send(n: int) -> None:
        nonlocal i
        for _ in range(n):
            ts = T0 + i * 1000
            writer.submit(Tick("h1", ts, [(k, float(i) + j / 64) for j, k in enumerate(wide)]))
            sent.append(ts)
            i += 1
            time.sleep(0.1)

    try:
        send(20)
        assert writer.wait_idle(10)
        pg_cluster.stop()
        stopped = time.monotonic()
        # a query meanwhile fails with an error the HTTP layer turns into 503, not 500
        with pytest.raises(Exception) as info:  # any driver error; which kind is checked below
            store.list_series()
        assert store.is_transient(info.value), repr(info.value)
        while time.monotonic() - stopped < 60:
            send(10)
        assert not writer.stats.healthy
        assert writer.stats.pending_ticks > 500
        pg_cluster.start()
        send(10)
        assert writer.wait_idle(60), writer.stats
        s = writer.stats
        assert s.healthy and s.dropped_samples == 0 and s.written_ticks == len(sent)
        (series,) = store.resolve("h1", [wide[-1]])
        stored = [t for ts, _ in store.iter_raw(series, T0, T0 + 10**9) for t in ts]
        assert stored == sent
    finally:
        writer.stop()
        store.close()
        with contextlib.suppress(Exception):  # it may be running already
            pg_cluster.start()
