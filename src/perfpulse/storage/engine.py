"""The history engine shared by the SQLite and PostgreSQL stores.

Both databases hold the same tables (:mod:`perfpulse.storage.schema`) and run the same statements, written
with ``?`` placeholders; a dialect only says how to connect, how to start a write transaction and how to
spell a placeholder. Everything that decides what is stored and how a query is answered lives here, once,
which is why a week of data gives the same answers from either database.

Writing (one thread at a time, under ``_write_lock``): each tick is appended to ``hist_stage`` and to the
in-memory arrays of the open chunk; when a tick crosses a minute boundary the finished minute is rolled up
from those arrays into ``hist_1m`` (and into the open hour's accumulators), an hour boundary writes
``hist_1h``, and a chunk boundary packs the arrays into ``hist_raw`` and empties ``hist_stage`` — all in the
tick's transaction, so a crash leaves either the old or the new state. The in-memory state is a cache of
the database: after any failed transaction it is dropped and rebuilt from ``hist_stage``, ``hist_1m`` and
``hist_state`` before the next write, exactly as at startup.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import struct
import threading
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from perfpulse.storage import codec
from perfpulse.storage.base import Bucket, SeriesInfo, Tick, UnknownSeries
from perfpulse.storage.schema import migrate
from perfpulse.storage.tiers import HOUR_MS, MINUTE_MS, PERIOD_MS, TABLE, Retention, finer

log = logging.getLogger(__name__)

Row = tuple[Any, ...]

_UPSERT_ROLLUP = (
    "INSERT INTO {t} (series_id, ts, mn, mx, sm, cnt, last) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (series_id, ts) DO UPDATE SET mn = excluded.mn, mx = excluded.mx, sm = excluded.sm,"
    " cnt = excluded.cnt, last = excluded.last"
)
_UPSERT_STATE = (
    "INSERT INTO hist_state (host, tier, until) VALUES (?, ?, ?)"
    " ON CONFLICT (host, tier) DO UPDATE SET until = excluded.until"
)
_ROLLUP_PAGE = 20_000


class Conn(abc.ABC):
    """The few things the engine needs from a DB-API connection, with ``?`` placeholders."""

    @abc.abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abc.abstractmethod
    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        """A statement whose result is not needed (PostgreSQL pipelines it)."""
        self.execute(sql, params)

    def pipeline(self) -> contextlib.AbstractContextManager[object]:
        """Statements inside may be sent without waiting for each answer."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    def begin(self) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...


def _floor(ts: int, period: int) -> int:
    return ts - ts % period


def series_name(key: str) -> str:
    return key.split("{", 1)[0]


@dataclass(slots=True)
class _State:
    """The writer's cache of the open chunk, minute and hour (rebuilt from the database when in doubt)."""

    sids: dict[str, int] = field(default_factory=dict)
    chunk_t0: int | None = None
    ts: dict[int, array[int]] = field(default_factory=dict)
    vals: dict[int, array[float]] = field(default_factory=dict)
    hour: dict[int, list[float]] = field(default_factory=dict)  # sid -> [mn, mx, sm, cnt, last]
    last_ts: int | None = None
    prev_ids: bytes | None = None


@dataclass(slots=True)
class _Out:
    """What one write() transaction will send, gathered while its ticks are applied."""

    stage: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    stage_before: int | None = None
    m1: list[tuple[int, int, float, float, float, int, float]] = field(default_factory=list)
    h1: list[tuple[int, int, float, float, float, int, float]] = field(default_factory=list)
    raw: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    state: dict[str, int] = field(default_factory=dict)


def _merge_hour(acc: dict[int, list[float]], sid: int, row: tuple[float, float, float, float, float]) -> None:
    mn, mx, sm, cnt, last = row
    cur = acc.get(sid)
    if cur is None:
        acc[sid] = [mn, mx, sm, cnt, last]
    else:
        cur[0] = min(cur[0], mn)
        cur[1] = max(cur[1], mx)
        cur[2] += sm
        cur[3] += cnt
        cur[4] = last


class SqlStore(abc.ABC):
    """A :class:`perfpulse.storage.base.Store` over a SQL database (subclasses: SQLite, PostgreSQL)."""

    dialect: str = ""

    def __init__(
        self,
        *,
        host: str,
        retention: Retention | None = None,
        chunk_seconds: int = 600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if chunk_seconds % 60 or not 60 <= chunk_seconds <= 3600:
            raise ValueError("chunk_seconds must be a whole number of minutes between 60 and 3600")
        self.host = host
        self.retention = retention or Retention()
        self.clock = clock
        self.chunk_ms = chunk_seconds * 1000
        self.dropped_out_of_order = 0
        self.retention_deleted = 0
        self._write_lock = threading.Lock()
        self._wconn: Conn | None = None
        self._state: _State | None = None
        self._retention_cursor: dict[str, int] = {}

    # -- dialect hooks ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def _connect_writer(self) -> Conn: ...

    @abc.abstractmethod
    def _reader(self) -> contextlib.AbstractContextManager[Conn]: ...

    @abc.abstractmethod
    def size_bytes(self) -> dict[str, int]: ...

    def _writer_failed(self, exc: BaseException) -> None:  # noqa: B027 - optional hook
        """Called after a failed write transaction; PostgreSQL drops a possibly dead connection here."""

    def _setup(self) -> None:
        """Create or migrate the schema; fixes the chunk length of a new database."""
        conn = self._writer()
        try:
            conn.begin()
            meta = migrate(self.dialect, conn.execute, {"chunk_ms": str(self.chunk_ms)})
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        self.chunk_ms = int(meta["chunk_ms"])

    def _writer(self) -> Conn:
        if self._wconn is None:
            self._wconn = self._connect_writer()
        return self._wconn

    def close(self) -> None:
        with self._write_lock:
            if self._wconn is not None:
                with contextlib.suppress(Exception):
                    self._wconn.close()
                self._wconn = None

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, ticks: Sequence[Tick]) -> int:
        with self._write_lock:
            conn = self._writer()
            try:
                if self._state is None:
                    self._state = self._recover(conn)
                st = self._state
                conn.begin()
                accepted = 0
                out = _Out()
                for tick in ticks:
                    if tick.host != self.host:
                        raise ValueError(f"this store writes host {self.host!r}, not {tick.host!r}")
                    accepted += self._apply(conn, st, tick, out)
                with conn.pipeline():
                    self._emit(conn, out)
                conn.commit()
            except BaseException as exc:
                self._state = None
                with contextlib.suppress(Exception):
                    conn.rollback()
                self._writer_failed(exc)
                raise
            return accepted

    def _recover(self, conn: Conn) -> _State:
        st = _State()
        conn.begin()
        try:
            for key, sid in conn.execute("SELECT key, id FROM hist_series WHERE host = ?", (self.host,)):
                st.sids[str(key)] = int(sid)
            horizons = {
                str(t): int(u)
                for t, u in conn.execute("SELECT tier, until FROM hist_state WHERE host = ?", (self.host,))
            }
            prev: bytes | None = None
            ids: array[int] = array("I")
            for ts_raw, ids_blob, vals_blob in conn.execute(
                "SELECT ts, ids, vals FROM hist_stage WHERE host = ? ORDER BY ts", (self.host,)
            ):
                ts = int(ts_raw)
                ids_b = bytes(ids_blob)
                if ids_b and ids_b != prev:
                    ids = array("I")
                    ids.frombytes(ids_b)
                    prev = ids_b
                vals: array[float] = array("d")
                vals.frombytes(bytes(vals_blob))
                if st.chunk_t0 is None:
                    st.chunk_t0 = _floor(ts, self.chunk_ms)
                for sid, v in zip(ids, vals, strict=True):
                    a = st.ts.get(sid)
                    if a is None:
                        st.ts[sid] = array("q", [ts])
                        st.vals[sid] = array("d", [v])
                    else:
                        a.append(ts)
                        st.vals[sid].append(v)
                st.last_ts = ts
            st.prev_ids = prev
            if st.last_ts is not None and "1m" in horizons:
                hour0 = _floor(st.last_ts, HOUR_MS)
                for sid, mn, mx, sm, cnt, last in conn.execute(
                    "SELECT m.series_id, m.mn, m.mx, m.sm, m.cnt, m.last FROM hist_1m m"
                    " JOIN hist_series s ON s.id = m.series_id"
                    " WHERE s.host = ? AND m.ts >= ? AND m.ts < ? ORDER BY m.ts",
                    (self.host, hour0, horizons["1m"]),
                ):
                    _merge_hour(st.hour, int(sid), (float(mn), float(mx), float(sm), float(cnt), float(last)))
        finally:
            conn.rollback()
        return st

    def _new_series(self, conn: Conn, st: _State, key: str, unit: str | None) -> int:
        rows = conn.execute(
            "INSERT INTO hist_series (host, key, name, unit) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (host, key) DO UPDATE SET unit = COALESCE(excluded.unit, hist_series.unit)"
            " RETURNING id",
            (self.host, key, series_name(key), unit),
        )
        sid = int(rows[0][0])
        st.sids[key] = sid
        return sid

    def _emit(self, conn: Conn, out: _Out) -> None:
        """The batch's rows, a few statements in all (one round trip per statement matters on a network)."""
        if out.stage_before is not None:
            conn.run("DELETE FROM hist_stage WHERE host = ? AND ts < ?", (self.host, out.stage_before))
        if out.stage:
            conn.executemany("INSERT INTO hist_stage (host, ts, ids, vals) VALUES (?, ?, ?, ?)", out.stage)
        if out.m1:
            conn.executemany(_UPSERT_ROLLUP.format(t="hist_1m"), out.m1)
        if out.h1:
            conn.executemany(_UPSERT_ROLLUP.format(t="hist_1h"), out.h1)
        if out.raw:
            conn.executemany(
                "INSERT INTO hist_raw (series_id, t0, n, data) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (series_id, t0) DO UPDATE SET n = excluded.n, data = excluded.data",
                out.raw,
            )
        if out.state:
            conn.executemany(_UPSERT_STATE, [(self.host, t, u) for t, u in out.state.items()])

    def _apply(self, conn: Conn, st: _State, tick: Tick, out: _Out) -> int:
        ts = int(tick.ts_ms)
        if st.last_ts is not None:
            if ts <= st.last_ts:
                # The wall clock stepped back: the periods it points into are closed already.
                self.dropped_out_of_order += 1
                return 0
            self._close_periods(st, ts, out)
        if st.chunk_t0 is None:
            st.chunk_t0 = _floor(ts, self.chunk_ms)
        ids: array[int] = array("I")
        vals: array[float] = array("d")
        sids = st.sids
        for key, value in tick.samples:
            sid = sids.get(key)
            if sid is None:
                sid = self._new_series(conn, st, key, tick.units.get(series_name(key)))
            v = float(value)
            a = st.ts.get(sid)
            if a is None:
                st.ts[sid] = array("q", [ts])
                st.vals[sid] = array("d", [v])
            elif a[-1] == ts:
                continue  # the same series twice in one tick: the first value stands
            else:
                a.append(ts)
                st.vals[sid].append(v)
            ids.append(sid)
            vals.append(v)
        ids_b = ids.tobytes()
        stored_ids = b"" if ids_b == st.prev_ids else ids_b
        st.prev_ids = ids_b
        out.stage.append((self.host, ts, stored_ids, vals.tobytes()))
        st.last_ts = ts
        return 1

    def _close_periods(self, st: _State, ts: int, out: _Out) -> None:
        assert st.last_ts is not None
        m_old, m_new = _floor(st.last_ts, MINUTE_MS), _floor(ts, MINUTE_MS)
        if m_new == m_old:
            return
        self._flush_minute(st, m_old, out)
        out.state["1m"] = m_new
        h_old, h_new = _floor(st.last_ts, HOUR_MS), _floor(ts, HOUR_MS)
        if h_new != h_old:
            out.h1.extend((sid, h_old, a[0], a[1], a[2], int(a[3]), a[4]) for sid, a in st.hour.items())
            st.hour.clear()
            out.state["1h"] = h_new
        c_new = _floor(ts, self.chunk_ms)
        if st.chunk_t0 is not None and c_new != st.chunk_t0:
            t0 = st.chunk_t0
            out.raw.extend(
                (sid, t0, len(a), codec.encode(t0, a, st.vals[sid])) for sid, a in st.ts.items() if len(a)
            )
            # The staged ticks of the closed chunk now live in hist_raw: those of this batch are never
            # written, those of earlier batches are deleted.
            out.stage.clear()
            out.stage_before = c_new
            st.ts.clear()
            st.vals.clear()
            st.prev_ids = None
            st.chunk_t0 = c_new
            out.state["raw"] = c_new

    def _flush_minute(self, st: _State, m0: int, out: _Out) -> None:
        rows = out.m1
        for sid, a in st.ts.items():
            i = bisect_left(a, m0)
            if i == len(a):
                continue
            sl = st.vals[sid][i:]
            mn, mx, sm, n, last = min(sl), max(sl), math.fsum(sl), len(sl), sl[-1]
            rows.append((sid, m0, mn, mx, sm, n, last))
            _merge_hour(st.hour, sid, (mn, mx, sm, n, last))

    # -- retention -------------------------------------------------------------------------------------------
    def run_retention(self, now_ms: int, budget_rows: int = 20_000, series_per_run: int = 500) -> int:
        """Delete expired data, at most ``budget_rows`` rows, visiting at most ``series_per_run`` series
        per tier; successive runs continue round-robin through the series.

        A stored unit goes when its whole period ends at or before the tier's cutoff: a raw chunk when
        ``t0 + chunk`` <= cutoff, a rollup row when ``ts + period`` <= cutoff.
        """
        deleted = 0
        with self._write_lock:
            conn = self._writer()
            try:
                conn.begin()
                cutoff = self.retention.cutoff_ms("raw", now_ms)
                deleted += conn.execute_count(
                    "DELETE FROM hist_stage WHERE host <> ? AND ts < ?", (self.host, cutoff)
                )
                for tier, table, col, length in (
                    ("raw", "hist_raw", "t0", self.chunk_ms),
                    ("1m", "hist_1m", "ts", MINUTE_MS),
                    ("1h", "hist_1h", "ts", HOUR_MS),
                ):
                    last_before = self.retention.cutoff_ms(tier, now_ms) - length
                    after = self._retention_cursor.get(tier, 0)
                    sids = [
                        int(r[0])
                        for r in conn.execute(
                            "SELECT id FROM hist_series WHERE id > ? ORDER BY id LIMIT ?",
                            (after, series_per_run),
                        )
                    ]
                    self._retention_cursor[tier] = sids[-1] if len(sids) == series_per_run else 0
                    for sid in sids:
                        if deleted >= budget_rows:
                            self._retention_cursor[tier] = sid - 1
                            break
                        deleted += conn.execute_count(  # table and column names are constants
                            f"DELETE FROM {table} WHERE series_id = ? AND {col} IN"  # noqa: S608
                            f" (SELECT {col} FROM {table} WHERE series_id = ? AND {col} <= ?"
                            f" ORDER BY {col} LIMIT ?)",
                            (sid, sid, last_before, budget_rows - deleted),
                        )
                conn.commit()
            except BaseException as exc:
                self._state = None
                with contextlib.suppress(Exception):
                    conn.rollback()
                self._writer_failed(exc)
                raise
        self.retention_deleted += deleted
        return deleted

    def expire_all(self, now_ms: int) -> int:
        """Run retention until a whole round over every series deletes nothing (for tools and tests)."""
        total = 0
        while True:
            with self._reader() as conn:
                n_series = int(conn.execute("SELECT COUNT(*) FROM hist_series")[0][0])
            rounds = n_series // 500 + 2
            got = sum(self.run_retention(now_ms) for _ in range(rounds))
            total += got
            if got == 0:
                return total

    def maintenance(self) -> None:
        return None

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failed write may succeed later (database locked or down, disk full)."""
        return isinstance(exc, OSError)

    # -- reading ---------------------------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        with self._reader() as conn:
            return [str(r[0]) for r in conn.execute("SELECT DISTINCT host FROM hist_series ORDER BY host")]

    def list_series(self, host: str | None = None) -> list[SeriesInfo]:
        sql = "SELECT id, host, key, name, unit FROM hist_series"
        params: tuple[Any, ...] = ()
        if host is not None:
            sql += " WHERE host = ?"
            params = (host,)
        with self._reader() as conn:
            rows = conn.execute(sql + " ORDER BY host, key", params)
        return [
            SeriesInfo(int(i), str(h), str(k), str(n), None if u is None else str(u))
            for i, h, k, n, u in rows
        ]

    def resolve(self, host: str, keys: Sequence[str]) -> list[SeriesInfo]:
        found: dict[str, SeriesInfo] = {}
        with self._reader() as conn:
            for key in dict.fromkeys(keys):
                rows = conn.execute(
                    "SELECT id, host, key, name, unit FROM hist_series WHERE host = ? AND key = ?",
                    (host, key),
                )
                if rows:
                    i, h, k, n, u = rows[0]
                    found[key] = SeriesInfo(int(i), str(h), str(k), str(n), None if u is None else str(u))
        missing = [k for k in keys if k not in found]
        if missing:
            raise UnknownSeries(host, missing)
        return [found[k] for k in keys]

    def _horizons(self, conn: Conn, host: str) -> dict[str, int]:
        return {
            str(t): int(u)
            for t, u in conn.execute("SELECT tier, until FROM hist_state WHERE host = ?", (host,))
        }

    def buckets(
        self, series: SeriesInfo, tier: str, start_ms: int, end_ms: int, step_ms: int, *, anchor_ms: int = 0
    ) -> list[Bucket]:
        if step_ms <= 0:
            raise ValueError("step must be positive")
        if start_ms < anchor_ms:
            raise ValueError("the bucket anchor must not be after the start")
        out: dict[int, Bucket] = {}
        with self._reader() as conn:
            horizons = self._horizons(conn, series.host)
            self._collect(
                conn,
                series=series,
                tier=tier,
                start=start_ms,
                end=end_ms,
                grid=(step_ms, anchor_ms),
                horizons=horizons,
                out=out,
            )
        return [out[k] for k in sorted(out)]

    def _collect(
        self,
        conn: Conn,
        *,
        series: SeriesInfo,
        tier: str,
        start: int,
        end: int,
        grid: tuple[int, int],
        horizons: dict[str, int],
        out: dict[int, Bucket],
    ) -> None:
        if start >= end:
            return
        step, anchor = grid
        if tier == "raw":
            for ts, vals in self._raw_pieces(conn, series, start, end, horizons):
                bucketize(ts, vals, step, out, anchor)
            return
        horizon = horizons.get(tier)
        split = start if horizon is None else max(start, min(end, horizon))
        if split > start:
            # Rollup rows start at multiples of their period and step is a multiple of it (or the tier
            # would not have been chosen), so each row falls in exactly one bucket.
            for b, mn, sm, mx, cnt in conn.execute(
                f"SELECT (ts - ?) / ?, MIN(mn), SUM(sm), MAX(mx), SUM(cnt) FROM {TABLE[tier]}"  # noqa: S608
                " WHERE series_id = ? AND ts >= ? AND ts < ? GROUP BY 1 ORDER BY 1",
                (anchor, step, series.id, start, split),
            ):
                _merge_bucket(out, int(b), grid, (float(mn), float(sm), float(mx), int(cnt)))
        lower = finer(tier)
        assert lower is not None
        self._collect(
            conn, series=series, tier=lower, start=split, end=end, grid=grid, horizons=horizons, out=out
        )

    def _raw_pieces(
        self, conn: Conn, series: SeriesInfo, start: int, end: int, horizons: dict[str, int]
    ) -> Iterator[tuple[Sequence[int], array[float]]]:
        staged_from = horizons.get("raw", 0)
        if start < staged_from:
            for t0, blob in conn.execute(
                "SELECT t0, data FROM hist_raw WHERE series_id = ? AND t0 > ? AND t0 < ? ORDER BY t0",
                (series.id, start - self.chunk_ms, min(end, staged_from)),
            ):
                ts, vals = codec.decode(int(t0), bytes(blob))
                i, j = bisect_left(ts, start), bisect_left(ts, end)
                if i < j:
                    yield (ts, vals) if (i == 0 and j == len(ts)) else (ts[i:j], vals[i:j])
        if end > staged_from:
            yield self._staged(conn, series, max(start, staged_from), end)

    def _staged(
        self, conn: Conn, series: SeriesInfo, start: int, end: int
    ) -> tuple[array[int], array[float]]:
        out_ts: array[int] = array("q")
        out_v: array[float] = array("d")
        pos: int | None = None
        prev: bytes | None = None
        rows = conn.execute(
            "SELECT ts, ids, vals FROM hist_stage WHERE host = ? AND ts < ? ORDER BY ts", (series.host, end)
        )
        unpack = struct.Struct("<d").unpack_from
        for ts, ids_blob, vals_blob in rows:
            ids_b = bytes(ids_blob)
            if ids_b and ids_b != prev:
                prev = ids_b
                ids: array[int] = array("I")
                ids.frombytes(ids_b)
                try:
                    pos = ids.index(series.id)
                except ValueError:
                    pos = None
            if pos is None or int(ts) < start:
                continue
            out_ts.append(int(ts))
            out_v.append(unpack(bytes(vals_blob), 8 * pos)[0])
        return out_ts, out_v

    def iter_raw(
        self, series: SeriesInfo, start_ms: int, end_ms: int
    ) -> Iterator[tuple[list[int], list[float]]]:
        with self._reader() as conn:
            horizons = self._horizons(conn, series.host)
            for ts, vals in self._raw_pieces(conn, series, start_ms, end_ms, horizons):
                if len(ts):
                    yield (ts if isinstance(ts, list) else list(ts)), vals.tolist()

    def iter_rollups(
        self, series: SeriesInfo, tier: str, start_ms: int, end_ms: int
    ) -> Iterator[list[tuple[int, float, float, float, int, float]]]:
        cursor = start_ms
        while cursor < end_ms:
            with self._reader() as conn:
                rows = conn.execute(
                    f"SELECT ts, mn, mx, sm, cnt, last FROM {TABLE[tier]}"  # noqa: S608
                    " WHERE series_id = ? AND ts >= ? AND ts < ? ORDER BY ts LIMIT ?",
                    (series.id, cursor, end_ms, _ROLLUP_PAGE),
                )
            if not rows:
                return
            yield [(int(t), float(a), float(b), float(c), int(d), float(e)) for t, a, b, c, d, e in rows]
            if len(rows) < _ROLLUP_PAGE:
                return
            cursor = int(rows[-1][0]) + 1

    def native_period_ms(self, tier: str) -> int:
        return PERIOD_MS[tier]


def _merge_bucket(
    out: dict[int, Bucket], b: int, grid: tuple[int, int], agg: tuple[float, float, float, int]
) -> None:
    mn, sm, mx, cnt = agg
    cur = out.get(b)
    if cur is None:
        out[b] = Bucket(grid[1] + b * grid[0], mn, sm, mx, cnt)
    else:
        cur.mn = min(cur.mn, mn)
        cur.mx = max(cur.mx, mx)
        cur.sm += sm
        cur.cnt += cnt


def bucketize(
    ts: Sequence[int], vals: Sequence[float], step: int, out: dict[int, Bucket], anchor: int = 0
) -> None:
    """Fold raw samples into buckets of ``step`` ms starting at ``anchor`` + k * step (C-level
    min/max/sum over each bucket's slice, so the cost is per bucket, not per sample)."""
    i, n = 0, len(ts)
    grid = (step, anchor)
    while i < n:
        b = (ts[i] - anchor) // step
        j = bisect_left(ts, anchor + (b + 1) * step, i, n)
        sl = vals[i:j]
        _merge_bucket(out, b, grid, (min(sl), math.fsum(sl), max(sl), j - i))
        i = j
