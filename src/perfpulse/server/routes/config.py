"""The settings that change while the daemon runs: read by anyone logged in, changed by admins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from perfpulse.server.deps import AdminUser, require_viewer
from perfpulse.server.hub import Hub
from perfpulse.server.live import ConfigUpdate, FieldProblem, LiveConfig

router = APIRouter(tags=["config"])


@router.get("/config", dependencies=[Depends(require_viewer)])
async def get_config(request: Request) -> dict[str, Any]:
    live: LiveConfig = request.app.state.live
    return live.view()


@router.put("/config", responses={422: {"description": "a value was rejected; one message per field"}})
async def put_config(body: ConfigUpdate, request: Request, admin: AdminUser) -> dict[str, Any]:
    """Change the interval, collectors, perf event set or process top-N. Takes effect at the next tick and
    is kept across restarts. Fields left out are unchanged; if any field is rejected nothing changes."""
    live: LiveConfig = request.app.state.live
    try:
        changed = live.apply(body)
    except FieldProblem as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=[{"loc": list(exc.loc), "msg": str(exc), "type": "value_error"}],
        ) from None
    view = live.view()
    if changed:
        hub: Hub = request.app.state.hub
        hub.broadcast({"type": "config", "changed": changed, "by": admin.username, **view})
    return {**view, "changed": changed}
