"""What the daemon sees: the latest snapshot, the collectors and the machine."""

from __future__ import annotations

import importlib
import logging
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from fastapi import APIRouter, Depends, HTTPException, Request, status

from perfpulse import __version__
from perfpulse.collectors.base import run_blocking
from perfpulse.model import Snapshot
from perfpulse.sampler import Sampler
from perfpulse.server.deps import CurrentUser, require_viewer

log = logging.getLogger("perfpulse.server")

router = APIRouter(tags=["system"])
CAP_PERFMON = 38
#: The full probe opens a counter per event; once a minute is plenty (paranoid level rarely changes).
PROBE_TTL = 60.0
_PROBE_CACHE: dict[str, tuple[float, dict[str, Any]]] = {}
CAP_SYS_ADMIN = 21


def sensitive_keys(sampler: Sampler) -> dict[str, frozenset[str]]:
    return {c.name: c.sensitive for c in sampler.aggregator.collectors() if c.sensitive}


def redacted(snapshot: Snapshot, sampler: Sampler, *, admin: bool) -> dict[str, Any]:
    """The snapshot as JSON-ready data; viewers lose every collector's ``sensitive`` keys."""
    out = snapshot.as_dict()
    if admin:
        return out
    for name, keys in sensitive_keys(sampler).items():
        entry = out["collectors"].get(name)
        if entry is not None:
            entry["data"] = {k: v for k, v in entry["data"].items() if k not in keys}
    return out


@router.get("/health", tags=["system"])
async def health(request: Request) -> dict[str, Any]:
    """Liveness for load balancers and systemd; reveals nothing but that the daemon answers."""
    sampler: Sampler = request.app.state.sampler
    return {"status": "ok" if sampler.running else "starting"}


@router.get("/snapshot", responses={503: {"description": "no sample taken yet"}})
async def snapshot(request: Request, user: CurrentUser) -> dict[str, Any]:
    """The latest snapshot: every enabled collector's data and meta."""
    sampler: Sampler = request.app.state.sampler
    snap = sampler.latest
    if snap is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="no sample taken yet; retry in a second"
        )
    return redacted(snap, sampler, admin=user.is_admin)


@router.get("/collectors", dependencies=[Depends(require_viewer)])
async def collectors(request: Request) -> dict[str, Any]:
    """Every collector: enabled, available (and if not, why and what to do), its metric catalogue and how
    its last collection went."""
    sampler: Sampler = request.app.state.sampler
    latest = sampler.latest
    out: list[dict[str, Any]] = []
    for c in sampler.aggregator.collectors():
        desc = c.describe()
        meta = latest.meta.get(c.name) if latest is not None else None
        if meta is not None:
            desc["last"] = meta.as_dict()
            data = latest.data.get(c.name, {}) if latest is not None else {}
            if data.get("available") is False:
                desc["available"] = False
                desc["reason"] = data.get("reason") or desc["reason"]
                desc["hint"] = data.get("hint") or desc["hint"]
        else:
            desc["last"] = None
        desc["sensitive"] = sorted(c.sensitive)
        out.append(desc)
    return {"interval": sampler.interval, "collectors": out}


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model", "Processor"):
                    return value.strip()
    except OSError:
        return None
    return platform.processor() or None


def _capabilities() -> set[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                mask = int(line.split()[1], 16)
                return {bit for bit in range(64) if mask >> bit & 1}
    except (OSError, ValueError):
        pass
    return set()


def perf_access() -> dict[str, Any]:
    """A short account of what perf counting is allowed here (``perfpulse check`` gives the full one)."""
    caps = _capabilities()
    try:
        paranoid: int | None = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text().strip())
    except (OSError, ValueError):
        paranoid = None
    system_wide = (
        os.geteuid() == 0
        or CAP_PERFMON in caps
        or CAP_SYS_ADMIN in caps
        or (paranoid is not None and paranoid <= 0)
    )
    out: dict[str, Any] = {
        "perf_event_paranoid": paranoid,
        "root": os.geteuid() == 0,
        "cap_perfmon": CAP_PERFMON in caps,
        "system_wide": system_wide,
        "supported": paranoid is not None,
    }
    try:
        probe = importlib.import_module("perfpulse.perf.probe")
    except ImportError:
        return out
    fn = getattr(probe, "probe", None)
    if not callable(fn):
        return out
    cached = _PROBE_CACHE.get("probe")
    if cached is not None and time.monotonic() - cached[0] < PROBE_TTL:
        out["probe"] = cached[1]
        return out
    try:
        result = fn()
        detail = result.as_dict() if hasattr(result, "as_dict") else result
        if isinstance(detail, dict):
            out["probe"] = detail
            _PROBE_CACHE["probe"] = (time.monotonic(), detail)
    except Exception as exc:  # a diagnosis must never take the endpoint down
        log.warning("perf probe failed: %s", exc)
        out["probe_error"] = f"{type(exc).__name__}: {exc}"
    return out


def system_info() -> dict[str, Any]:
    uname = os.uname()
    vm = psutil.virtual_memory()
    boot = psutil.boot_time()
    return {
        "hostname": socket.gethostname(),
        "kernel": uname.release,
        "kernel_version": uname.version,
        "arch": uname.machine,
        "cpu_model": _cpu_model(),
        "cpus_logical": psutil.cpu_count(logical=True),
        "cpus_physical": psutil.cpu_count(logical=False),
        "memory_bytes": vm.total,
        "boot_time": boot,
        "uptime_seconds": time.time() - boot,
        "perf": perf_access(),
    }


def _os_release() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


@router.get("/system", dependencies=[Depends(require_viewer)])
async def system(request: Request) -> dict[str, Any]:
    """The machine (host name, kernel, CPU, memory, perf access) and the daemon (version, uptime, sampler
    and WebSocket statistics)."""
    info = await run_blocking(system_info)
    info["os"] = await run_blocking(_os_release)
    sampler: Sampler = request.app.state.sampler
    info["perfpulse"] = {
        "version": __version__,
        "python": sys.version.split()[0],
        "started_at": request.app.state.started_at,
        "uptime_seconds": time.time() - request.app.state.started_at,
        "sampler": sampler.stats(),
        "websocket": request.app.state.hub.stats(),
    }
    return info
