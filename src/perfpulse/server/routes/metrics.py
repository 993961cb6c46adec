"""Prometheus text exposition of the latest tick, plus the daemon's own health."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from perfpulse.exporters.prometheus import CONTENT_TYPE, RenderCache
from perfpulse.sampler import Sampler
from perfpulse.server.deps import require_viewer
from perfpulse.server.hub import Hub

router = APIRouter(tags=["metrics"])


def self_metrics(sampler: Sampler, hub: Hub) -> bytes:
    """The daemon's own counters, in the same exposition format (names disjoint from the catalogue's)."""
    s = sampler.stats()
    h = hub.stats()
    rows = [
        ("perfpulse_sampler_ticks_total", "counter", "Ticks taken since start", s["seq"]),
        (
            "perfpulse_sampler_skipped_ticks_total",
            "counter",
            "Grid points skipped because a tick ran late",
            s["skipped_ticks"],
        ),
        ("perfpulse_sampler_interval_seconds", "gauge", "Sampling interval", s["interval"]),
        ("perfpulse_ws_clients", "gauge", "WebSocket clients connected", h["clients"]),
        (
            "perfpulse_ws_dropped_ticks_total",
            "counter",
            "Ticks a slow client missed (newest kept)",
            h["dropped_ticks"],
        ),
        (
            "perfpulse_ws_slow_disconnects_total",
            "counter",
            "Clients disconnected for not reading",
            h["disconnected_slow"],
        ),
        ("perfpulse_ws_refused_total", "counter", "Clients refused at the connection cap", h["refused_full"]),
    ]
    lines: list[str] = []
    for name, kind, help_text, value in rows:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.append(f"{name} {float(value)!r}")
    return ("\n".join(lines) + "\n").encode()


@router.get(
    "/metrics",
    dependencies=[Depends(require_viewer)],
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format 0.0.4"}},
)
async def metrics(request: Request) -> Response:
    """The latest tick as Prometheus text. Scrape with a read-only API token as a bearer token."""
    sampler: Sampler = request.app.state.sampler
    hub: Hub = request.app.state.hub
    cache: RenderCache | None = getattr(request.app.state, "prometheus_cache", None)
    if cache is None:
        cache = request.app.state.prometheus_cache = RenderCache()
    body = cache.render(sampler.latest, sampler.aggregator.collectors()) + self_metrics(sampler, hub)
    if callable(store_text := getattr(request.app.state.store, "prometheus_text", None)):
        body += store_text()  # the history writer's counters, e.g. perfpulse_store_dropped_samples_total
    return Response(body, media_type=CONTENT_TYPE)
