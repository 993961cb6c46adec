"""History queries: parse and bound a request, pick the tier, shape the answer.

Everything here sits on the :class:`~perfpulse.storage.base.Store` protocol, so the HTTP routes, the
``perfpulse export`` command and the tests get the same answers from SQLite and PostgreSQL. Every request
is bounded before any row is read: at most :data:`MAX_SERIES` series, :data:`MAX_POINTS` points per series
and :data:`MAX_TOTAL_POINTS` in all; a bad request raises :class:`QueryError` with a message meant for the
person who wrote it.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import operator
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from perfpulse.storage.base import Bucket, QueryError, SeriesInfo, Store
from perfpulse.storage.engine import bucketize
from perfpulse.storage.tiers import DAY_S, PERIOD_MS, TIERS, choose_tier

MAX_POINTS = 100_000
MAX_SERIES = 32
MAX_TOTAL_POINTS = 1_000_000
MAX_RANGE_MS = int(20 * 366 * DAY_S * 1000)
MAX_EXPORT_ROWS = 20_000_000
MIN_EPOCH_MS = 946_684_800_000  # 2000-01-01: earlier timestamps are a unit mistake, not history

_REL = re.compile(r"^(now)?\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w))?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_time(value: str | float | int | None, now_ms: int, *, name: str, default: int | None = None) -> int:
    """Epoch ms from epoch seconds, ISO 8601, ``now`` or ``now-24h`` / ``-7d`` (units ms s m h d w)."""
    if value is None or value == "":
        if default is None:
            raise QueryError(f"'{name}' is required")
        return default
    if isinstance(value, int | float):
        secs = float(value)
    else:
        text = value.strip().lower()
        m = _REL.match(text)
        if m and (m.group(1) or m.group(2)):
            offset = 0
            if m.group(2):
                offset = int(float(m.group(3)) * _UNIT_MS[m.group(4)])
                if m.group(2) == "-":
                    offset = -offset
            return now_ms + offset
        try:
            secs = float(text)
        except ValueError:
            try:
                dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise QueryError(
                    f"'{name}' must be epoch seconds, an ISO 8601 time or 'now-24h' style, not {value!r}"
                ) from None
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            secs = dt.timestamp()
    if not math.isfinite(secs):
        raise QueryError(f"'{name}' must be a finite time")
    ms = round(secs * 1000)
    if not MIN_EPOCH_MS <= ms <= 4_102_444_800_000:
        raise QueryError(f"'{name}' = {value!r} is outside 2000..2100 (epoch seconds, not milliseconds?)")
    return ms


@dataclass(frozen=True, slots=True)
class Plan:
    tier: str
    step_ms: int
    anchor_ms: int


_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def check_names(host: str, keys: Sequence[str]) -> None:
    """Series keys and host names are short printable text; anything else cannot name a series."""
    for what, value in [("host", host), *(("series", k) for k in keys)]:
        if not value or len(value) > 1024 or _BAD_CHARS.search(value):
            raise QueryError(f"{what} {value[:80]!r} is not a valid name (1..1024 printable characters)")


def _check_range(start: int, end: int) -> None:
    if end <= start:
        raise QueryError("'to' must be after 'from'")
    if end - start > MAX_RANGE_MS:
        raise QueryError("the range may span at most 20 years")


def plan(
    store: Store, *, start: int, end: int, points: int, tier: str, now_ms: int, n_series: int = 1
) -> Plan:
    """The tier and bucket width for ``points`` buckets over [start, end)."""
    _check_range(start, end)
    if not 1 <= points <= MAX_POINTS:
        raise QueryError(f"'points' must be between 1 and {MAX_POINTS}, got {points}")
    if points * n_series > MAX_TOTAL_POINTS:
        raise QueryError(f"{n_series} series x {points} points exceeds {MAX_TOTAL_POINTS} points per query")
    span = end - start
    step = max(1, -(-span // points))
    if tier == "auto":
        chosen = choose_tier(step, start, now_ms, store.retention)
    elif tier in TIERS:
        chosen = tier
        period = PERIOD_MS[tier]
        if period and step < period:
            needed = -(-span // period)
            raise QueryError(
                f"{needed} points at {tier} resolution exceed points={points}: ask for more points, a shorter"
                " range or tier=auto"
            )
        kept = store.retention.seconds(tier)
        if span > kept * 1000:
            raise QueryError(
                f"the {tier} tier keeps {kept / 3600:g} h of data, less than the"
                f" {span / 3_600_000:g} h asked: use tier=auto or a coarser tier"
            )
    else:
        raise QueryError(f"'tier' must be auto, raw, 1m or 1h, not {tier!r}")
    period = PERIOD_MS[chosen]
    if period:
        step = -(-step // period) * period
    return Plan(chosen, step, 0)


def _series_payload(s: SeriesInfo) -> dict[str, Any]:
    return {"host": s.host, "key": s.key, "name": s.name, "unit": s.unit}


def _grid(start: int, end: int, plan_: Plan) -> range:
    a = plan_.anchor_ms
    return range((start - a) // plan_.step_ms, (end - 1 - a) // plan_.step_ms + 1)


def _widen(start: int, end: int, plan_: Plan) -> tuple[int, int]:
    """The range widened to whole buckets: a bucket that ``from`` or ``to`` cuts in two would otherwise
    look emptier than its neighbours."""
    grid = _grid(start, end, plan_)
    return plan_.anchor_ms + grid.start * plan_.step_ms, plan_.anchor_ms + grid.stop * plan_.step_ms


def _bucket_series(store: Store, s: SeriesInfo, start: int, end: int, plan_: Plan) -> dict[int, Bucket]:
    """Whole buckets over the range, keyed by bucket index."""
    start, end = _widen(start, end, plan_)
    if plan_.tier != "raw":
        got = store.buckets(s, plan_.tier, start, end, plan_.step_ms, anchor_ms=plan_.anchor_ms)
    else:
        out: dict[int, Bucket] = {}
        for ts, vals in store.iter_raw(s, start, end):
            bucketize(ts, vals, plan_.step_ms, out, plan_.anchor_ms)
        got = list(out.values())
    return {(b.start - plan_.anchor_ms) // plan_.step_ms: b for b in got}


def _raw_samples(
    store: Store, s: SeriesInfo, start: int, end: int, limit: int
) -> tuple[list[int], list[float]] | None:
    """The raw samples in [start, end), or None when there are more than ``limit``."""
    ts_out: list[int] = []
    vs_out: list[float] = []
    for ts, vals in store.iter_raw(s, start, end):
        ts_out.extend(ts)
        vs_out.extend(vals)
        if len(ts_out) > limit:
            return None
    return ts_out, vs_out


def _with_gaps(ts: list[int], vals: list[float]) -> tuple[list[float], list[float | None]]:
    """Raw samples with a null after every gap longer than twice the usual interval (so charts break).

    Written with map/enumerate over C-level operations: a day at 1 s is 86,400 samples."""
    t_out: list[float] = list(map(operator.truediv, ts, itertools.repeat(1000)))
    v_out: list[float | None] = list(vals)
    if len(ts) < 3:
        return t_out, v_out
    head = sorted(map(operator.sub, ts[1:1001], ts[:1000]))
    limit = 2 * head[len(head) // 2]
    if max(map(operator.sub, ts[1:], ts[:-1])) <= limit:  # the usual case, without a Python-level loop
        return t_out, v_out
    gaps = [i for i, d in enumerate(map(operator.sub, ts[1:], ts[:-1])) if d > limit]
    out_t: list[float] = []
    out_v: list[float | None] = []
    prev = 0
    for i in gaps:  # a null just after sample i
        out_t.extend(t_out[prev : i + 1])
        out_v.extend(v_out[prev : i + 1])
        out_t.append((ts[i] + limit // 2) / 1000)
        out_v.append(None)
        prev = i + 1
    out_t.extend(t_out[prev:])
    out_v.extend(v_out[prev:])
    return out_t, out_v


def history(
    store: Store,
    *,
    host: str,
    keys: Sequence[str],
    start: int,
    end: int,
    points: int,
    tier: str = "auto",
    now_ms: int,
) -> dict[str, Any]:
    """Answer of ``GET /api/v1/history``: per series, parallel lists t (epoch s), min, avg, max.

    With the raw tier and no more samples than points, the samples themselves come back (min = avg =
    max) with a null after each gap; otherwise one entry per bucket of ``step`` seconds, null where the
    bucket holds no data.
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise QueryError("give at least one 'series'")
    check_names(host, keys)
    if len(keys) > MAX_SERIES:
        raise QueryError(f"at most {MAX_SERIES} series per query, got {len(keys)}")
    p = plan(store, start=start, end=end, points=points, tier=tier, now_ms=now_ms, n_series=len(keys))
    resolved = store.resolve(host, keys)
    grid = _grid(start, end, p)
    series_out = []
    for s in resolved:
        entry = _series_payload(s)
        raw = _raw_samples(store, s, start, end, points) if p.tier == "raw" else None
        if raw is not None:
            t_out, v_out = _with_gaps(*raw)
            entry.update(t=t_out, min=v_out, avg=v_out, max=v_out, resolution="raw")
        else:
            buckets = _bucket_series(store, s, start, end, p)
            mins: list[float | None] = []
            avgs: list[float | None] = []
            maxs: list[float | None] = []
            for i in grid:
                b = buckets.get(i)
                if b is None:
                    mins.append(None)
                    avgs.append(None)
                    maxs.append(None)
                else:
                    mins.append(b.mn)
                    avgs.append(b.sm / b.cnt)
                    maxs.append(b.mx)
            entry.update(
                t=[(p.anchor_ms + i * p.step_ms) / 1000 for i in grid],
                min=mins,
                avg=avgs,
                max=maxs,
                resolution="bucket",
            )
        series_out.append(entry)
    return {
        "host": host,
        "from": start / 1000,
        "to": end / 1000,
        "tier": p.tier,
        "step": p.step_ms / 1000,
        "series": series_out,
    }


# -- comparison ---------------------------------------------------------------------------------------------
_RELATIVE = {"previous": None, "yesterday": 86_400_000, "last_week": 7 * 86_400_000}


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _summary(buckets: dict[int, Bucket]) -> dict[str, float | None]:
    cnt = sum(b.cnt for b in buckets.values())
    if not cnt:
        return {"avg": None, "p95": None, "min": None, "max": None, "count": 0}
    return {
        "avg": math.fsum(b.sm for b in buckets.values()) / cnt,
        "p95": _p95([b.sm / b.cnt for b in buckets.values()]),
        "min": min(b.mn for b in buckets.values()),
        "max": max(b.mx for b in buckets.values()),
        "count": cnt,
    }


def compare(
    store: Store,
    *,
    host: str,
    keys: Sequence[str],
    start: int,
    end: int,
    points: int,
    baseline: str | None,
    baseline_start: int | None = None,
    baseline_end: int | None = None,
    now_ms: int,
) -> dict[str, Any]:
    """Answer of ``GET /api/v1/history/compare``: the range and its baseline on one relative time axis.

    The baseline is the previous period of equal length, the same range a day or a week earlier, or a
    custom range of equal length. Both use the same tier and bucket width; ``offset`` (seconds) is what
    was subtracted from the range to get the baseline, rounded to the tier's period so that rollup rows
    fall into the same buckets on both sides. ``p95`` is over the bucket averages.
    """
    keys = list(dict.fromkeys(keys))
    if not keys:
        raise QueryError("give at least one 'series'")
    check_names(host, keys)
    if len(keys) > MAX_SERIES:
        raise QueryError(f"at most {MAX_SERIES} series per query, got {len(keys)}")
    _check_range(start, end)
    span = end - start
    if baseline_start is not None or baseline_end is not None:
        if baseline_start is None or baseline_end is None:
            raise QueryError("a custom baseline needs both 'from2' and 'to2'")
        if baseline_end - baseline_start != span:
            raise QueryError(
                f"the two ranges must have equal length ({span / 1000:g} s vs"
                f" {(baseline_end - baseline_start) / 1000:g} s)"
            )
        offset = start - baseline_start
        mode = "custom"
    else:
        mode = baseline or "previous"
        if mode not in _RELATIVE:
            raise QueryError(f"'baseline' must be previous, yesterday or last_week, not {baseline!r}")
        offset = _RELATIVE[mode] or span
    if offset == 0:
        raise QueryError("the baseline is the same range")
    base_start = start - offset
    earliest = min(start, base_start)
    p = plan(
        store,
        start=earliest,
        end=earliest + span,
        points=points,
        tier="auto",
        now_ms=now_ms,
        n_series=2 * len(keys),
    )
    period = PERIOD_MS[p.tier] or 1
    offset = round(offset / period) * period
    base_start = start - offset
    anchor = start - start % period
    cur_plan = Plan(p.tier, p.step_ms, anchor)
    base_plan = Plan(p.tier, p.step_ms, anchor - offset)
    resolved = store.resolve(host, keys)
    grid = range(0, (end - 1 - anchor) // p.step_ms + 1)
    out = []
    for s in resolved:
        cur = _bucket_series(store, s, start, end, cur_plan)
        base = _bucket_series(store, s, base_start, base_start + span, base_plan)
        cs, bs = _summary(cur), _summary(base)
        change = None
        if cs["avg"] is not None and bs["avg"] not in (None, 0.0):
            change = (cs["avg"] - bs["avg"]) / abs(bs["avg"]) * 100.0
        entry = _series_payload(s)
        entry.update(
            current=[None if (b := cur.get(i)) is None else b.sm / b.cnt for i in grid],
            current_max=[None if (b := cur.get(i)) is None else b.mx for i in grid],
            baseline=[None if (b := base.get(i)) is None else b.sm / b.cnt for i in grid],
            baseline_max=[None if (b := base.get(i)) is None else b.mx for i in grid],
            summary={"current": cs, "baseline": bs, "change_pct": change},
        )
        out.append(entry)
    return {
        "host": host,
        "mode": mode,
        "from": start / 1000,
        "to": end / 1000,
        "baseline_from": base_start / 1000,
        "baseline_to": (base_start + span) / 1000,
        "offset": offset / 1000,
        "tier": p.tier,
        "step": p.step_ms / 1000,
        "t": [(anchor + i * p.step_ms - start) / 1000 for i in grid],
        "series": out,
    }


# -- export -------------------------------------------------------------------------------------------------
EXPORT_FORMATS = ("csv", "json")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def export_tier(store: Store, start: int, end: int, tier: str, now_ms: int) -> str:
    if tier == "auto":
        return choose_tier(0, start, now_ms, store.retention)
    if tier not in TIERS:
        raise QueryError(f"'tier' must be auto, raw, 1m or 1h, not {tier!r}")
    return tier


def export(
    store: Store,
    *,
    host: str,
    keys: Sequence[str] | None,
    start: int,
    end: int,
    tier: str = "auto",
    fmt: str = "csv",
    now_ms: int,
    max_rows: int = MAX_EXPORT_ROWS,
    progress: Callable[[float], None] | None = None,
    chunk_bytes: int = 64 * 1024,
) -> Iterator[bytes]:
    """The export as a stream of byte chunks (memory bounded by one stored chunk or one page of rows).

    Everything is validated before this returns (the stream itself is lazy), so an HTTP handler can still
    answer 422.
    """
    if fmt not in EXPORT_FORMATS:
        raise QueryError(f"'format' must be csv or json, not {fmt!r}")
    _check_range(start, end)
    check_names(host, keys or ())
    chosen = export_tier(store, start, end, tier, now_ms)
    resolved = store.resolve(host, keys) if keys else store.list_series(host)
    if not resolved:
        raise QueryError(f"no series recorded for host {host!r}")
    if len(resolved) > 10_000:
        raise QueryError("more than 10,000 series: name the series to export")
    period = PERIOD_MS[chosen]
    if period:
        estimate = len(resolved) * (-(-(end - start) // period))
        if estimate > max_rows:
            raise QueryError(
                f"about {estimate:,} rows exceed the export limit of {max_rows:,}: narrow the range"
            )
    else:
        raw_span = min(end, now_ms) - max(start, store.retention.cutoff_ms("raw", now_ms) - 3_600_000)
        # Sampling is at most 10 Hz.
        estimate = len(resolved) * max(0, raw_span) // 100
        if estimate > max_rows:
            raise QueryError(
                f"up to {estimate:,} raw rows exceed the export limit of {max_rows:,}: export fewer series"
                " or use tier=1m"
            )
    return _export_stream(
        store,
        resolved,
        start=start,
        end=end,
        tier=chosen,
        fmt=fmt,
        progress=progress,
        chunk_bytes=chunk_bytes,
    )


def _export_stream(
    store: Store,
    resolved: Sequence[SeriesInfo],
    *,
    start: int,
    end: int,
    tier: str,
    fmt: str,
    progress: Callable[[float], None] | None,
    chunk_bytes: int,
) -> Iterator[bytes]:
    raw = tier == "raw"
    columns = (
        ["time", "host", "series", "value"]
        if raw
        else ["time", "host", "series", "min", "avg", "max", "count", "last"]
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    first_row = True
    if fmt == "csv":
        writer.writerow(columns)
    else:
        meta = {"tier": tier, "from": start / 1000, "to": end / 1000, "columns": columns}
        buf.write(orjson.dumps(meta).decode()[:-1] + ',"rows":[\n')

    def emit(row: list[Any]) -> None:
        nonlocal first_row
        if fmt == "csv":
            writer.writerow(row)
        else:
            buf.write(("" if first_row else ",\n") + orjson.dumps(row).decode())
        first_row = False

    total = len(resolved)
    for idx, s in enumerate(resolved):
        if raw:
            for ts, vals in store.iter_raw(s, start, end):
                for t, v in zip(ts, vals, strict=True):
                    emit([_iso(t), s.host, s.key, v])
                    if buf.tell() >= chunk_bytes:
                        yield buf.getvalue().encode()
                        buf.seek(0)
                        buf.truncate()
                if progress is not None and ts:
                    progress((idx + (ts[-1] - start) / (end - start)) / total)
        else:
            for rows in store.iter_rollups(s, tier, start, end):
                for t, mn, mx, sm, cnt, last in rows:
                    emit([_iso(t), s.host, s.key, mn, sm / cnt, mx, cnt, last])
                    if buf.tell() >= chunk_bytes:
                        yield buf.getvalue().encode()
                        buf.seek(0)
                        buf.truncate()
                if progress is not None and rows:
                    progress((idx + (rows[-1][0] - start) / (end - start)) / total)
        if progress is not None:
            progress((idx + 1) / total)
    if fmt == "json":
        buf.write("\n]}\n")
    if buf.tell():
        yield buf.getvalue().encode()
