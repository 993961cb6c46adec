"""``/api/v1/ws``: the live stream (protocol in docs/API.md).

The handshake is checked before it is accepted: an unauthenticated peer or a foreign Origin gets an HTTP
error and no WebSocket at all, so nothing is ever sent to a socket we do not trust.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from perfpulse import __version__
from perfpulse.config import Settings
from perfpulse.sampler import Sampler
from perfpulse.server.deps import authenticate
from perfpulse.server.hub import PROTOCOL_VERSION, Client, Hub
from perfpulse.server.security import origin_allowed

log = logging.getLogger("perfpulse.server")

router = APIRouter(tags=["websocket"])


async def _deny(ws: WebSocket, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=status, headers=headers))
    else:
        await ws.close(1008)


def _parse_subs(value: Any, known: set[str]) -> tuple[frozenset[str] | None, list[str]]:
    """A subscription from a list of names (None: everything); unknown names are returned separately."""
    if value is None:
        return None, []
    names = [str(v) for v in value][:256] if isinstance(value, list) else []
    unknown = sorted({n for n in names if n not in known})
    return frozenset(n for n in names if n in known), unknown


def _parse_backfill(value: Any, default: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) and f >= 0 else default


def hello(sampler: Sampler, client: Client, backfill: int, ring_seconds: float) -> dict[str, Any]:
    latest = sampler.latest
    return {
        "type": "hello",
        "protocol": PROTOCOL_VERSION,
        "version": __version__,
        "host": sampler.host,
        "interval": sampler.interval,
        "user": client.username,
        "role": "admin" if client.admin else "viewer",
        "seq": latest.seq if latest is not None else 0,
        "collectors": {c.name: c.describe() for c in sampler.aggregator.collectors()},
        "subscribed": None if client.subs is None else sorted(client.subs),
        "lean": client.lean,
        "sticky": {c.name: sorted(c.sticky) for c in sampler.aggregator.collectors() if c.sticky},
        "backfill": backfill,
        "backfill_seconds": ring_seconds,
    }


@router.websocket("/ws")
async def stream(ws: WebSocket) -> None:
    settings: Settings = ws.app.state.settings
    hub: Hub = ws.app.state.hub
    sampler: Sampler = ws.app.state.sampler
    if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.allowed_origins):
        await _deny(ws, 403, "cross-origin WebSocket refused")
        return
    principal = await authenticate(ws)
    if principal is None:
        await _deny(ws, 401, "not authenticated")
        return
    if not hub.reserve():
        await _deny(ws, 503, "server is at its WebSocket connection limit", {"Retry-After": "5"})
        return
    try:
        await ws.accept()
    except BaseException:
        hub.release()
        raise
    known = set(sampler.aggregator.names())
    subs, unknown = _parse_subs(
        ws.query_params["collectors"].split(",") if "collectors" in ws.query_params else None, known
    )
    backfill_s = _parse_backfill(ws.query_params.get("backfill"), settings.backfill_seconds)
    client = hub.attach(
        admin=principal.is_admin,
        username=principal.username,
        subs=subs,
        session_id=principal.session_id,
        token_id=principal.token_id,
        lean=ws.query_params.get("lean", "").lower() in ("1", "true", "yes"),
    )
    # Between attach and backfill nothing awaits, so no live tick can slip in ahead of the backfill.
    entries = hub.recent(backfill_s)
    hub.send_control(client, hello(sampler, client, len(entries), hub.ring_seconds))
    if unknown:
        hub.send_control(client, {"type": "error", "message": f"unknown collectors: {', '.join(unknown)}"})
    hub.backfill(client, entries)

    def on_message(c: Client, msg: Any) -> dict[str, Any] | None:
        if not isinstance(msg, dict):
            return {"type": "error", "message": "a message is a JSON object with a 'type'"}
        kind = msg.get("type")
        if kind == "ping":
            return {"type": "pong", "seq": sampler.seq}
        if kind == "subscribe":
            new_subs, bad = _parse_subs(msg.get("collectors"), set(sampler.aggregator.names()))
            c.subs = new_subs
            c.resync()  # collectors new to the view: their sticky values go out in full first
            reply: dict[str, Any] = {
                "type": "subscribed",
                "collectors": None if new_subs is None else sorted(new_subs),
                "unknown": bad,
            }
            entries = hub.recent(_parse_backfill(msg.get("backfill"), 0.0))
            reply["backfill"] = len(entries)
            # The reply goes ahead of its backfill.
            hub.send_control(c, reply)
            hub.backfill(c, entries)
            return None
        if kind == "resync":
            c.resync()
            return None
        return {"type": "error", "message": f"unknown message type {kind!r}"}

    reason = await hub.run(ws, client, on_message)
    log.debug("websocket client %d (%s) ended: %s", client.id, client.username, reason)
