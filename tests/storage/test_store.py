"""The Store semantics, against a real SQLite file and a real PostgreSQL (same tests, both stores)."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from gen import KEYS, T0, ticks

from perfpulse.storage import QueryError, Retention, SqlStore, Tick, UnknownSeries
from perfpulse.storage import query as q
from perfpulse.storage.postgres import PostgresStore
from perfpulse.storage.sqlite import SQLiteStore

MIN = 60_000
HOUR = 3_600_000

Factory = Callable[..., SqlStore]


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    made: list[SqlStore] = []
    if request.param == "postgres":
        dsn = request.getfixturevalue("pg_dsn")

        def factory(**kw: object) -> SqlStore:
            s = PostgresStore(dsn, host=str(kw.pop("host", "h1")), **kw)  # type: ignore[arg-type]
            made.append(s)
            return s
    else:

        def factory(**kw: object) -> SqlStore:
            s = SQLiteStore(tmp_path / "perfpulse.db", host=str(kw.pop("host", "h1")), **kw)  # type: ignore[arg-type]
            made.append(s)
            return s

    yield factory
    for s in made:
        s.close()


def _write(store: SqlStore, all_ticks: list[Tick], batch: int = 500) -> None:
    for i in range(0, len(all_ticks), batch):
        store.write(all_ticks[i : i + batch])


def _reference(all_ticks: list[Tick], key: str, start: int, end: int, step: int) -> dict[int, list[float]]:
    """Brute-force buckets straight from the ticks."""
    out: dict[int, list[float]] = defaultdict(list)
    for t in all_ticks:
        if start <= t.ts_ms < end:
            for k, v in t.samples:
                if k == key:
                    out[t.ts_ms // step].append(v)
    return out


def _check_against_reference(result: dict, all_ticks: list[Tick], start: int, end: int) -> None:
    step = int(result["step"] * 1000)
    # buckets are whole: the range widens to the bucket grid
    start, end = start - start % step, -(-end // step) * step
    for s in result["series"]:
        ref = _reference(all_ticks, s["key"], start, end, step)
        assert s["resolution"] == "bucket"
        for t, mn, avg, mx in zip(s["t"], s["min"], s["avg"], s["max"], strict=True):
            b = round(t * 1000) // step
            vals = ref.get(b)
            if not vals:
                assert (mn, avg, mx) == (None, None, None), t
                continue
            assert mn == min(vals) and mx == max(vals), t
            assert math.isclose(avg, math.fsum(vals) / len(vals), rel_tol=1e-12, abs_tol=1e-12), t


def test_rollups_match_brute_force_across_tiers(make_store: Factory) -> None:
    store = make_store()
    all_ticks = list(ticks(3 * 8640, interval_ms=10_000))  # three days at 10 s
    _write(store, all_ticks)
    end = all_ticks[-1].ts_ms + 1
    now = end
    for start, points, tier in (
        (T0, 70, "1h"),  # hour buckets (a bit over an hour each)
        (T0 + 2 * 86_400_000, 300, "1m"),  # 24 h at ~5 min buckets from 1m rollups
        (end - 6 * HOUR, 1000, "raw"),  # 6 h of raw at 22 s buckets
        (T0 + 86_400_000 + 123_456, 77, "1m"),  # odd start and bucket count
    ):
        r = q.history(store, host="h1", keys=list(KEYS[:5]), start=start, end=end, points=points, now_ms=now)
        assert r["tier"] == tier
        assert len(r["series"][0]["t"]) <= points + 2
        _check_against_reference(r, all_ticks, start, end)


def test_open_periods_are_answered_from_finer_tiers(make_store: Factory) -> None:
    """The minute and hour still open have no rollup row yet; their samples must still show up."""
    store = make_store()
    all_ticks = list(ticks(400, interval_ms=1000, start=T0 + 30 * MIN + 500))  # crosses a few minutes
    _write(store, all_ticks)
    end = all_ticks[-1].ts_ms + 1
    r = q.history(
        store, host="h1", keys=["memory_used_bytes"], start=T0, end=T0 + 2 * HOUR, points=2, now_ms=end
    )
    assert r["tier"] == "1h"
    assert r["series"][0]["max"][0] == max(t.samples[2][1] for t in all_ticks)
    r = q.history(store, host="h1", keys=[KEYS[0]], start=end - 5 * MIN, end=end, points=5, now_ms=end)
    assert r["tier"] == "1m"
    _check_against_reference(r, all_ticks, end - 5 * MIN, end)


def test_recovery_after_reopen_continues_open_minute_and_hour(make_store: Factory) -> None:
    """State kept in memory (open chunk, hour accumulators) is rebuilt from the database on open."""
    all_ticks = list(ticks(2000, interval_ms=1000, start=T0 + 10 * MIN))
    store = make_store()
    _write(store, all_ticks[:777], batch=50)
    store.close()
    store = make_store()
    _write(store, all_ticks[777:1500], batch=37)
    store.close()
    store = make_store()
    _write(store, all_ticks[1500:], batch=1)
    end = all_ticks[-1].ts_ms + 1
    for start, points in ((T0, 3), (T0 + 10 * MIN, 40), (end - 400_000, 1000)):
        r = q.history(store, host="h1", keys=list(KEYS), start=start, end=end, points=points, now_ms=end)
        if r["series"][0]["resolution"] == "raw":
            continue
        _check_against_reference(r, all_ticks, start, end)
    # and every raw sample is there exactly once
    r = q.history(store, host="h1", keys=[KEYS[2]], start=T0, end=end, points=10_000, tier="raw", now_ms=end)
    assert r["series"][0]["resolution"] == "raw"
    assert r["series"][0]["t"] == [t.ts_ms / 1000 for t in all_ticks]


def test_raw_points_and_gaps_are_nulls(make_store: Factory) -> None:
    store = make_store()
    first = list(ticks(120, interval_ms=1000, start=T0))
    second = list(ticks(120, interval_ms=1000, start=T0 + 600_000, seed=8))
    _write(store, first + second)
    end = second[-1].ts_ms + 1
    r = q.history(store, host="h1", keys=[KEYS[2]], start=T0, end=end, points=5000, now_ms=end)
    s = r["series"][0]
    assert s["resolution"] == "raw" and r["tier"] == "raw"
    assert s["avg"].count(None) == 1  # one break between the two runs
    gap = s["avg"].index(None)
    assert first[-1].ts_ms / 1000 < s["t"][gap] < second[0].ts_ms / 1000
    # bucketed: the empty minutes between the runs are nulls
    r = q.history(store, host="h1", keys=[KEYS[2]], start=T0, end=end, points=60, now_ms=end)
    avgs = r["series"][0]["avg"]
    assert avgs[0] is not None and avgs[-1] is not None and None in avgs


def test_out_of_order_and_duplicate_ticks(make_store: Factory) -> None:
    store = make_store()
    assert store.write([Tick("h1", T0 + 2000, [("a", 1.0), ("a", 9.0)])]) == 1
    assert store.write([Tick("h1", T0 + 1000, [("a", 2.0)])]) == 0  # clock stepped back
    assert store.dropped_out_of_order == 1
    r = q.history(store, host="h1", keys=["a"], start=T0, end=T0 + 5000, points=100, now_ms=T0 + 5000)
    assert r["series"][0]["avg"] == [1.0]
    with pytest.raises(ValueError, match="host"):
        store.write([Tick("other", T0 + 3000, [("a", 1.0)])])


def test_series_listing_and_hosts(make_store: Factory) -> None:
    a = make_store(host="alpha")
    a.write(list(ticks(3, host="alpha")))
    b = make_store(host="beta")
    b.write([Tick("beta", T0, [("only_beta", 1.0)])])
    assert a.hosts() == ["alpha", "beta"]
    keys = {(s.host, s.key) for s in a.list_series()}
    assert ("beta", "only_beta") in keys and ("alpha", "memory_used_bytes") in keys
    units = {s.key: s.unit for s in a.list_series("alpha")}
    assert units["memory_used_bytes"] == "bytes"
    with pytest.raises(UnknownSeries, match="only_beta"):
        a.resolve("alpha", ["only_beta"])
    # a viewer can read another host's series through any store
    r = q.history(
        a, host="beta", keys=["only_beta"], start=T0 - 1000, end=T0 + 1000, points=10, now_ms=T0 + 1000
    )
    assert r["series"][0]["avg"] == [1.0]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"start": T0 + 1000, "end": T0}, "after"),
        ({"points": 0}, "points"),
        ({"points": 10**7}, "points"),
        ({"keys": ["nope"]}, "unknown series"),
        ({"keys": []}, "at least one"),
        ({"keys": [f"k{i}" for i in range(40)]}, "at most"),
        ({"start": T0 - 10 * 365 * 86_400_000, "tier": "raw", "points": 100_000}, "raw"),
        ({"start": T0 - 30 * 365 * 86_400_000}, "20 years"),
        ({"tier": "2m"}, "tier"),
        ({"keys": ["a\x00b"]}, "not a valid name"),
        ({"host": ""}, "not a valid name"),
    ],
)
def test_bad_queries_raise_query_error(make_store: Factory, kw: dict, message: str) -> None:
    store = make_store()
    store.write(list(ticks(10)))
    args = {
        "host": "h1",
        "keys": [KEYS[0]],
        "start": T0,
        "end": T0 + HOUR,
        "points": 100,
        "now_ms": T0 + HOUR,
    }
    args.update(kw)
    with pytest.raises(QueryError, match=message):
        q.history(store, **args)


def test_ten_years_auto_is_bounded(make_store: Factory) -> None:
    store = make_store()
    store.write(list(ticks(10)))
    start = T0 - 10 * 365 * 86_400_000
    r = q.history(store, host="h1", keys=[KEYS[0]], start=start, end=T0 + HOUR, points=2000, now_ms=T0 + HOUR)
    assert r["tier"] == "1h" and len(r["series"][0]["t"]) <= 2002


def test_parse_time() -> None:
    now = T0
    assert q.parse_time("now-24h", now, name="from") == now - 86_400_000
    assert q.parse_time("-90m", now, name="from") == now - 5_400_000
    assert q.parse_time("1767225600", now, name="from") == T0
    assert q.parse_time("2026-01-01T00:00:00Z", now, name="from") == T0
    for bad in ("yesterday-ish", "nan", "1767225600000", "inf"):
        with pytest.raises(QueryError):
            q.parse_time(bad, now, name="from")


def test_retention_deletes_exactly_what_it_should(make_store: Factory) -> None:
    """A chunk goes when t0 + chunk <= cutoff, a rollup row when ts + period <= cutoff; nothing else."""
    retention = Retention(raw=3 * 3600, minute=86_400, hour=3 * 86_400)
    store = make_store(retention=retention, chunk_seconds=300)
    all_ticks = list(ticks(5 * 8640, interval_ms=10_000))  # five days
    _write(store, all_ticks, batch=2000)
    now = all_ticks[-1].ts_ms + 1

    def rows() -> dict[str, list[tuple[int, int]]]:
        with store._reader() as conn:
            return {
                "raw": [tuple(r) for r in conn.execute("SELECT series_id, t0 FROM hist_raw ORDER BY 1, 2")],
                "1m": [tuple(r) for r in conn.execute("SELECT series_id, ts FROM hist_1m ORDER BY 1, 2")],
                "1h": [tuple(r) for r in conn.execute("SELECT series_id, ts FROM hist_1h ORDER BY 1, 2")],
            }

    before = rows()
    expected = {
        "raw": [r for r in before["raw"] if r[1] + 300_000 > now - 3 * HOUR],
        "1m": [r for r in before["1m"] if r[1] + MIN > now - 86_400_000],
        "1h": [r for r in before["1h"] if r[1] + HOUR > now - 3 * 86_400_000],
    }
    assert all(len(expected[t]) < len(before[t]) for t in before)  # each tier has something to expire
    deleted = store.run_retention(now, budget_rows=1000)
    assert deleted == 1000  # bounded work per run
    total = deleted + store.expire_all(now)
    after = rows()
    assert after == expected
    assert total == sum(len(before[t]) - len(expected[t]) for t in before)
    # a range older than the raw retention is answered from the 1m tier; within it, from raw
    r = q.history(store, host="h1", keys=[KEYS[2]], start=now - 4 * HOUR, end=now, points=10_000, now_ms=now)
    assert r["tier"] == "1m"
    r = q.history(store, host="h1", keys=[KEYS[2]], start=now - 2 * HOUR, end=now, points=10_000, now_ms=now)
    assert r["tier"] == "raw" and len(r["series"][0]["t"]) == 720


def test_compare_relative_and_custom(make_store: Factory) -> None:
    store = make_store()
    all_ticks = list(ticks(2 * 8640 + 100, interval_ms=10_000))
    _write(store, all_ticks)
    now = all_ticks[-1].ts_ms + 1
    start, end = T0 + 86_400_000 + 6 * HOUR, T0 + 86_400_000 + 12 * HOUR
    r = q.compare(
        store,
        host="h1",
        keys=[KEYS[2], KEYS[5]],
        start=start,
        end=end,
        points=72,
        baseline="yesterday",
        now_ms=now,
    )
    assert r["offset"] == 86_400 and r["tier"] == "1m" and r["step"] == 300
    s = r["series"][0]
    assert len(s["current"]) == len(s["baseline"]) == len(r["t"]) == 72
    ref_cur = [v for t in all_ticks if start <= t.ts_ms < end for k, v in t.samples if k == KEYS[2]]
    ref_base = [
        v
        for t in all_ticks
        if start - 86_400_000 <= t.ts_ms < end - 86_400_000
        for k, v in t.samples
        if k == KEYS[2]
    ]
    summ = s["summary"]
    assert summ["current"]["max"] == max(ref_cur) and summ["baseline"]["max"] == max(ref_base)
    assert math.isclose(summ["current"]["avg"], sum(ref_cur) / len(ref_cur), rel_tol=1e-12)
    assert math.isclose(
        summ["change_pct"], (summ["current"]["avg"] / summ["baseline"]["avg"] - 1) * 100, rel_tol=1e-9
    )
    # an all-zero series: no change percentage rather than a division by zero
    assert r["series"][1]["summary"]["change_pct"] is None
    prev = q.compare(
        store, host="h1", keys=[KEYS[0]], start=start, end=end, points=10, baseline="previous", now_ms=now
    )
    assert prev["baseline_to"] == start / 1000
    custom = q.compare(
        store,
        host="h1",
        keys=[KEYS[0]],
        start=start,
        end=end,
        points=10,
        baseline=None,
        baseline_start=T0,
        baseline_end=T0 + 6 * HOUR,
        now_ms=now,
    )
    assert custom["mode"] == "custom" and custom["baseline_from"] == T0 / 1000
    with pytest.raises(QueryError, match="equal length"):
        q.compare(
            store,
            host="h1",
            keys=[KEYS[0]],
            start=start,
            end=end,
            points=10,
            baseline=None,
            baseline_start=T0,
            baseline_end=T0 + HOUR,
            now_ms=now,
        )
    with pytest.raises(QueryError, match="baseline"):
        q.compare(
            store, host="h1", keys=[KEYS[0]], start=start, end=end, points=10, baseline="lastyear", now_ms=now
        )


def test_export_csv_and_json_stream(make_store: Factory) -> None:
    store = make_store()
    all_ticks = list(ticks(1000, interval_ms=1000))
    _write(store, all_ticks)
    now = all_ticks[-1].ts_ms + 1
    seen: list[float] = []
    chunks = list(
        q.export(
            store,
            host="h1",
            keys=[KEYS[2], KEYS[0]],
            start=T0,
            end=now,
            tier="raw",
            now_ms=now,
            progress=seen.append,
            chunk_bytes=4096,
        )
    )
    assert len(chunks) > 5  # streamed in pieces, not built whole
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert rows[0] == ["time", "host", "series", "value"]
    assert len(rows) == 1 + 2 * 1000
    assert [float(r[3]) for r in rows[1:1001]] == [t.samples[2][1] for t in all_ticks]
    assert seen[-1] == 1.0 and seen == sorted(seen)
    doc = orjson.loads(
        b"".join(q.export(store, host="h1", keys=None, start=T0, end=now, tier="1m", fmt="json", now_ms=now))
    )
    assert doc["columns"][3:6] == ["min", "avg", "max"]
    assert {r[2] for r in doc["rows"]} == set(KEYS)
    with pytest.raises(QueryError, match="format"):
        q.export(store, host="h1", keys=None, start=T0, end=now, fmt="xml", now_ms=now)
    with pytest.raises(QueryError, match="limit"):
        q.export(
            store,
            host="h1",
            keys=None,
            start=T0 - 365 * 86_400_000,
            end=now,
            tier="1m",
            now_ms=now,
            max_rows=1000,
        )


def test_schema_is_versioned_and_the_chunk_length_fixed_at_creation(make_store: Factory) -> None:
    from perfpulse.storage import StoreError

    store = make_store(chunk_seconds=120)
    store.write(list(ticks(400, interval_ms=1000)))
    store.close()
    again = make_store(chunk_seconds=900)  # a later configuration cannot reinterpret stored chunks
    assert again.chunk_ms == 120_000
    r = q.history(
        again, host="h1", keys=[KEYS[2]], start=T0, end=T0 + 400_000, points=1000, now_ms=T0 + 400_000
    )
    assert len(r["series"][0]["t"]) == 400
    conn = again._writer()
    conn.begin()
    conn.execute("UPDATE hist_meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    again.close()
    with pytest.raises(StoreError, match="newer"):
        make_store()
