"""History over HTTP: range queries, comparisons, exports and the list of recorded series.

Every query is validated and bounded in :mod:`perfpulse.storage.query` before a row is read; what it
refuses comes back as 422 with its message, and a history database that is down as 503. Queries run in
worker threads, never on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import Response, StreamingResponse

from perfpulse.collectors.base import run_blocking
from perfpulse.server.deps import require_viewer
from perfpulse.storage import query as q
from perfpulse.storage.base import QueryError, Store

router = APIRouter(prefix="/history", tags=["history"], dependencies=[Depends(require_viewer)])

T = TypeVar("T")

SeriesParam = Annotated[
    list[str] | None,
    Query(
        description="series keys, repeatable, e.g. memory_used_bytes or"
        ' disk_read_bytes_per_second{device="sda"}'
    ),
]
FromParam = Annotated[
    str | None, Query(alias="from", description="epoch seconds, ISO 8601 or now-24h (default now-1h)")
]
ToParam = Annotated[str | None, Query(alias="to", description="epoch seconds, ISO 8601 or now (default now)")]
HostParam = Annotated[str | None, Query(description="the host that recorded the series (default this one)")]


def _store(request: Request) -> Store:
    holder: Any = getattr(request.app.state, "store", None)
    store = getattr(holder, "store", holder)
    if store is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="history is not enabled on this daemon"
        )
    return store  # type: ignore[no-any-return]


async def _call(store: Store, fn: Callable[[], T]) -> T:
    try:
        return await run_blocking(fn)
    except QueryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except Exception as exc:
        if not store.is_transient(exc):
            raise  # a bug: let it be the 500 it is
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the history database cannot answer now ({type(exc).__name__}); try again shortly",
        ) from None


def _range(from_: str | None, to: str | None) -> tuple[int, int, int]:
    now = int(time.time() * 1000)
    try:
        end = q.parse_time(to, now, name="to", default=now)
        start = q.parse_time(from_, now, name="from", default=end - 3_600_000)
    except QueryError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    return start, end, now


def _json(data: Any) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


@router.get("/series", summary="Recorded series and hosts, for pickers")
async def list_series(request: Request, host: HostParam = None) -> Response:
    store = _store(request)

    def run() -> dict[str, Any]:
        if host is not None:
            q.check_names(host, ())
        series = store.list_series(host)
        return {
            "default_host": store.host,
            "hosts": store.hosts(),
            "series": [{"host": s.host, "key": s.key, "name": s.name, "unit": s.unit} for s in series],
        }

    return _json(await _call(store, run))


@router.get("", summary="Series over a time range, bucketed to at most `points` points (min/avg/max)")
async def history(
    request: Request,
    *,
    series: SeriesParam = None,
    from_: FromParam = None,
    to: ToParam = None,
    points: Annotated[int, Query(description=f"buckets per series, 1..{q.MAX_POINTS}")] = 1000,
    tier: Annotated[Literal["auto", "raw", "1m", "1h"], Query()] = "auto",
    host: HostParam = None,
) -> Response:
    store = _store(request)
    start, end, now = _range(from_, to)
    keys = series or []
    result = await _call(
        store,
        lambda: q.history(
            store,
            host=host or store.host,
            keys=keys,
            start=start,
            end=end,
            points=points,
            tier=tier,
            now_ms=now,
        ),
    )
    return _json(result)


@router.get("/compare", summary="A range against the previous period, yesterday, last week or a custom range")
async def compare(
    request: Request,
    *,
    series: SeriesParam = None,
    from_: FromParam = None,
    to: ToParam = None,
    baseline: Annotated[Literal["previous", "yesterday", "last_week"] | None, Query()] = None,
    from2: Annotated[str | None, Query(description="custom baseline start (with to2)")] = None,
    to2: Annotated[str | None, Query(description="custom baseline end; same length as the range")] = None,
    points: Annotated[int, Query()] = 500,
    host: HostParam = None,
) -> Response:
    store = _store(request)
    start, end, now = _range(from_, to)
    b_start = b_end = None
    if from2 is not None or to2 is not None:
        try:
            b_start = q.parse_time(from2, now, name="from2")
            b_end = q.parse_time(to2, now, name="to2")
        except QueryError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    keys = series or []
    result = await _call(
        store,
        lambda: q.compare(
            store,
            host=host or store.host,
            keys=keys,
            start=start,
            end=end,
            points=points,
            baseline=baseline,
            baseline_start=b_start,
            baseline_end=b_end,
            now_ms=now,
        ),
    )
    return _json(result)


@router.get("/export", summary="Stored samples or rollups as CSV or JSON, streamed")
async def export(
    request: Request,
    *,
    series: SeriesParam = None,
    from_: FromParam = None,
    to: ToParam = None,
    format: Annotated[Literal["csv", "json"], Query()] = "csv",
    tier: Annotated[Literal["auto", "raw", "1m", "1h"], Query()] = "auto",
    host: HostParam = None,
) -> StreamingResponse:
    store = _store(request)
    start, end, now = _range(from_, to)
    keys = series or None
    stream = await _call(
        store,
        lambda: q.export(
            store, host=host or store.host, keys=keys, start=start, end=end, tier=tier, fmt=format, now_ms=now
        ),
    )
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    name = f"perfpulse-history-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(start / 1000))}.{format}"
    return StreamingResponse(
        stream, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
