"""`perfpulse serve`: the daemon — sampler, REST, WebSocket stream and Prometheus endpoint."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from perfpulse.config import ConfigFileError, Settings, load_settings

#: Run-time settings that, named on the command line, win over what was saved through the API.
LIVE_OPTIONS = (
    "interval",
    "collectors",
    "perf_events",
    "top_n",
    "retention_raw_seconds",
    "retention_minute_seconds",
    "retention_hour_seconds",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the monitoring daemon (web dashboard, REST and WebSocket API, Prometheus)",
        description="Run the daemon. It listens on 127.0.0.1:8787 unless told otherwise; any other address "
        "needs TLS (--certfile/--keyfile) or --behind-proxy with --trusted-proxies.",
    )
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8787)")
    p.add_argument("--interval", type=float, help="seconds between samples (0.1-60, default 1)")
    p.add_argument("--config", type=Path, help="TOML settings file (default $PERFPULSE_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="where the database and state live")
    p.add_argument(
        "--database", help="history database: postgresql://user@host/db (default: SQLite in the data dir)"
    )
    p.add_argument("--collectors", help="comma-separated collectors to enable (default all)")
    p.add_argument("--perf-events", help="comma-separated perf events to count")
    p.add_argument("--top-n", type=int, help="processes in the top-processes table")
    p.add_argument(
        "--retention-raw-seconds", type=float, help="keep raw samples this long (default 172800: 2 days)"
    )
    p.add_argument(
        "--retention-minute-seconds",
        type=float,
        help="keep 1-minute rollups this long (default 7776000: 90 days)",
    )
    p.add_argument(
        "--retention-hour-seconds",
        type=float,
        help="keep 1-hour rollups this long (default 63072000: 2 years); each tier's retention is at "
        "least 3600 and at most the next coarser tier's",
    )
    p.add_argument("--certfile", type=Path, help="TLS certificate (PEM)")
    p.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")
    p.add_argument(
        "--behind-proxy", action="store_true", default=None, help="a TLS reverse proxy is in front"
    )
    p.add_argument(
        "--trusted-proxies", help="comma-separated proxy addresses whose X-Forwarded-* are believed"
    )
    p.add_argument("--allowed-hosts", help="comma-separated extra Host names the daemon answers to")
    p.add_argument("--no-access-log", dest="access_log", action="store_false", default=None)
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "host",
        "port",
        "interval",
        "data_dir",
        "database",
        "collectors",
        "perf_events",
        "top_n",
        "retention_raw_seconds",
        "retention_minute_seconds",
        "retention_hour_seconds",
        "certfile",
        "keyfile",
        "behind_proxy",
        "trusted_proxies",
        "allowed_hosts",
        "access_log",
    )
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def explain(exc: ValidationError) -> str:
    lines = ["perfpulse serve: invalid settings:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def check_startable(settings: Settings) -> str | None:
    """Why the daemon must not start with these settings, or None."""
    problem = settings.bind_problem()
    if problem:
        return problem
    for path in (settings.certfile, settings.keyfile):
        if path is not None and not os.access(path, os.R_OK):
            return f"cannot read {path}: check the path and its permissions"
    return None


def uvicorn_config(settings: Settings, app: Any, *, log_level: str = "info") -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(settings.certfile) if settings.certfile else None,
        ssl_keyfile=str(settings.keyfile) if settings.keyfile else None,
        # X-Forwarded-* only from the proxies named; never by default (every local process is 127.0.0.1).
        proxy_headers=settings.behind_proxy,
        forwarded_allow_ips=list(settings.trusted_proxies) if settings.behind_proxy else [],
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
        ws_per_message_deflate=False,  # compressing per client would undo serializing once per tick
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        timeout_graceful_shutdown=1,
        access_log=settings.access_log,
        log_level=log_level,
        server_header=False,
        lifespan="on",
    )


def open_history(settings: Settings) -> Any:
    """The history store and its writer (SQLite in the data directory unless a database URL is given)."""
    from perfpulse.storage.history import History
    from perfpulse.storage.tiers import Retention

    retention = Retention(
        raw=settings.retention_raw_seconds,
        minute=settings.retention_minute_seconds,
        hour=settings.retention_hour_seconds,
    )
    return History.open(settings.database, data_dir=settings.data_dir, retention=retention)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, **_overrides(args))
    except ConfigFileError as exc:
        print(f"perfpulse serve: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(explain(exc), file=sys.stderr)
        return 2
    problem = check_startable(settings)
    if problem:
        print(f"perfpulse serve: {problem}", file=sys.stderr)
        return 2
    import uvicorn

    from perfpulse.server.app import create_app

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s: %(name)s: %(message)s")
    pinned = [k for k in LIVE_OPTIONS if getattr(args, k, None) is not None]
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = open_history(settings)
    except Exception as exc:  # the history database is optional for the live view: say why, go on
        print(f"perfpulse serve: history disabled: {exc}", file=sys.stderr)
        store = None
    try:
        app = create_app(settings, store=store, pinned=pinned)
    except (OSError, ValueError) as exc:
        print(f"perfpulse serve: cannot start: {exc}", file=sys.stderr)
        return 1
    server = uvicorn.Server(uvicorn_config(settings, app, log_level=args.log_level))
    server.run()
    return 0 if server.started else 1
