"""The FastAPI application: ``create_app(settings)`` builds it, its lifespan runs the Sampler.

Everything under ``/api/v1`` answers JSON and needs a session or token except login, setup and health;
the dashboard's static files (or a short page saying it is not built) are served at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from perfpulse import __version__
from perfpulse.collectors.base import run_blocking
from perfpulse.config import Settings
from perfpulse.sampler import Sampler, Sink, build_default
from perfpulse.server.accounts import AccountStore
from perfpulse.server.hub import Hub
from perfpulse.server.live import ConfigUpdate, LiveConfig
from perfpulse.server.routes import auth, config, metrics, system, tokens, users, ws
from perfpulse.server.security import (
    GuardMiddleware,
    LoginThrottle,
    SetupGate,
    allowed_host_names,
    install_log_redaction,
)

log = logging.getLogger("perfpulse.server")

API = "/api/v1"
WEB_DIR = Path(__file__).resolve().parent.parent / "web"
#: Longest the lifespan waits for the first tick before answering requests anyway.
FIRST_TICK_WAIT = 5.0
#: Shutdown budgets (SIGTERM must end the process within 5 s: uvicorn's 1 s grace, then these).
SAMPLER_CLOSE_BUDGET = 1.5
STORE_CLOSE_BUDGET = 2.0

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>perfpulse</title></head>
<body>
<h1>perfpulse {version}</h1>
<p>The daemon is running, but the web dashboard is not built into this installation
(<code>src/perfpulse/web/</code> is missing). Build it with <code>make run</code> from a source checkout.</p>
<p>The API is available: its schema is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>,
the WebSocket stream at <code>/api/v1/ws</code>; see docs/API.md.</p>
</body></html>
"""


class SPAFiles(StaticFiles):
    """The built dashboard; any path that is not a file gets index.html (client-side routes)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except StarletteHTTPException as exc:
            if exc.status_code != 404 or path.startswith("api/"):
                raise
            return FileResponse(Path(str(self.directory)) / "index.html", media_type="text/html")


def _announce_default(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def setup_message(settings: Settings, token: str, path: Path, *, tty: bool) -> str:
    scheme = "https" if settings.tls else "http"
    host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    base = f"{scheme}://{host}:{settings.port}/"
    lines = ["perfpulse: no admin account exists yet."]
    if tty:
        # The token rides in the fragment, which browsers never send to a server or write to its logs.
        lines.append(f"  Open {base}#setup={token} to create one,")
        lines.append(f"  or open {base} and paste the token from {path}.")
    else:
        lines.append(f"  Open {base} and paste the one-time token from {path} (readable only by this user),")
    lines.append("  or run `perfpulse user add NAME --role admin` on this machine.")
    return "\n".join(lines)


def _store_sink(store: Any) -> Sink | None:
    """The store's Sampler sink, if it offers one (``sink`` attribute or ``write_snapshot`` method)."""
    for attr in ("sink", "write_snapshot"):
        fn = getattr(store, attr, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


async def _close(obj: Any) -> None:
    for attr in ("aclose", "close"):
        fn = getattr(obj, attr, None)
        if callable(fn):
            result = fn() if attr == "aclose" else await run_blocking(fn)
            if inspect.isawaitable(result):
                await result
            return


def create_app(
    settings: Settings,
    *,
    sampler: Sampler | None = None,
    store: Any | None = None,
    accounts: AccountStore | None = None,
    hub: Hub | None = None,
    sinks: Mapping[str, Sink] | None = None,
    web_dir: Path | None = None,
    pinned: Iterable[str] = (),
    announce: Callable[[str], None] | None = None,
) -> FastAPI:
    """The daemon's app.

    ``sampler`` defaults to every registered collector configured from ``settings``; ``store`` (history)
    is exposed as ``app.state.store`` and, when it has a ``sink``, fed every tick; ``accounts`` defaults to
    the ``auth_*`` tables of ``<data_dir>/perfpulse.db``. ``pinned`` names settings given on the command
    line, which the saved run-time settings must not override.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if sampler is None:
        sampler = build_default(enabled=settings.collectors, interval=settings.interval)
    accounts = accounts or AccountStore(settings.db_path)
    live = LiveConfig(settings, sampler, store)
    # top-N and the perf event set reach the collectors the same way a live change does.
    live.apply(ConfigUpdate(top_n=settings.top_n, perf_events=settings.perf_events), persist=False)
    restored = live.restore(pinned=pinned)
    live.apply_retention()  # the history expires data by these settings, whatever it was opened with
    if restored:
        log.info("re-applied saved settings: %s", ", ".join(restored))
    hub = hub or Hub(
        max_clients=settings.max_connections,
        ring_seconds=settings.backfill_seconds,
        sensitive=lambda: {c.name: c.sensitive for c in sampler.aggregator.collectors() if c.sensitive},
        sticky=lambda: {c.name: c.sticky for c in sampler.aggregator.collectors() if c.sticky},
    )
    gate = SetupGate(settings.data_dir)
    say = announce or _announce_default
    extra_sinks = dict(sinks or {})
    if store is not None and (s := _store_sink(store)) is not None:
        extra_sinks.setdefault("store", s)
        if callable(bind := getattr(store, "bind_catalogue", None)):
            # History follows the live catalogue (collectors switched on or off at run time).
            bind(sampler.catalogue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        install_log_redaction()
        if not await run_blocking(accounts.has_admin):
            token = gate.open()
            say(setup_message(settings, token, gate.path, tty=sys.stderr.isatty()))
        else:
            gate.close()
        sampler.add_sink(hub.publish, name="hub")
        for name, sink in extra_sinks.items():
            sampler.add_sink(sink, name=name)
        runner = asyncio.create_task(sampler.run(), name="sampler")
        idle = float(settings.session_idle_seconds)
        watcher = asyncio.create_task(
            hub.watch_credentials(lambda s, t: accounts.live_credentials(s, t, idle=idle)),
            name="credential-watch",
        )
        deadline = time.monotonic() + FIRST_TICK_WAIT
        while sampler.latest is None and time.monotonic() < deadline and not runner.done():
            await asyncio.sleep(0.01)
        if runner.done() and runner.exception() is not None:
            raise RuntimeError("the sampler failed to start") from runner.exception()
        try:
            yield
        finally:
            hub.close_all()
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            try:
                await asyncio.wait_for(sampler.aclose(sink_timeout=0.5), SAMPLER_CLOSE_BUDGET)
            except TimeoutError:
                log.warning("sampler did not stop within %.1f s; continuing shutdown", SAMPLER_CLOSE_BUDGET)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            for name in extra_sinks:
                sampler.remove_sink(name)
            sampler.remove_sink("hub")
            if store is not None:
                try:
                    await asyncio.wait_for(_close(store), STORE_CLOSE_BUDGET)
                except Exception:
                    log.exception("closing the store failed")
            await run_blocking(accounts.close)

    app = FastAPI(
        title="perfpulse",
        version=__version__,
        description="Real-time Linux performance monitor. Authenticate with the session cookie from "
        "/api/v1/auth/login or with a read-only API token as `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        openapi_url=f"{API}/openapi.json",
        docs_url=None,  # Swagger UI would load script from a CDN and run inline script
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sampler = sampler
    app.state.store = store
    app.state.accounts = accounts
    app.state.hub = hub
    app.state.live = live
    app.state.setup = gate
    app.state.started_at = time.time()
    app.state.throttle = LoginThrottle(
        per_client=settings.login_failures_per_client,
        per_user=settings.login_failures_per_user,
        window=settings.login_window_seconds,
        attempts_per_minute=settings.login_attempts_per_minute,
    )

    for module in (auth, users, tokens, system, config, metrics, ws):
        app.include_router(module.router, prefix=API)
    if importlib.util.find_spec("perfpulse.server.routes.history") is not None:
        history = importlib.import_module("perfpulse.server.routes.history")
        app.include_router(history.router, prefix=API)

    web = web_dir if web_dir is not None else WEB_DIR
    if (web / "index.html").is_file():
        app.mount("/", SPAFiles(directory=web, html=True), name="web")
    else:
        page = NOT_BUILT.format(version=__version__)

        @app.get("/", include_in_schema=False)
        async def not_built() -> HTMLResponse:
            return HTMLResponse(page)

    app.add_middleware(
        GuardMiddleware,
        hosts=allowed_host_names(settings),
        origins=settings.allowed_origins,
        tls=settings.tls,
    )
    return app
