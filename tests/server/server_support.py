"""A real perfpulse server on a real loopback port, in a thread of the test process, fed by fake collectors.

Fake collectors stand in for the machine's sources because the tests check the server (access rules, the
stream, fan-out), and need data they can predict; everything from the socket up is the real thing.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher

from perfpulse.collectors.aggregator import MetricsAggregator
from perfpulse.commands.serve import uvicorn_config
from perfpulse.config import Settings
from perfpulse.model import MetricSpec
from perfpulse.sampler import Sampler
from perfpulse.server.accounts import AccountStore
from perfpulse.server.app import create_app
from perfpulse.testing import FakeCollector

ADMIN = ("alice", "alice-password-1")
VIEWER = ("victor", "victor-password-1")
#: Cheap argon2id parameters so that tests can log in often; the production defaults are tested separately.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)


class SecretCollector(FakeCollector):
    """Like the processes collector: its ``cmdlines`` are for admins only, and seldom change."""

    sensitive = frozenset({"cmdlines"})
    sticky = frozenset({"cmdlines"})


class EventsCollector(FakeCollector):
    """A collector configured with a perf event set, as the perf collector is."""

    def __init__(self, *, events: list[str] | None = None, **kwargs: Any) -> None:
        kwargs.pop("clock", None)
        chosen = list(events or ["cycles", "instructions"])
        super().__init__(
            "perf_events", data=lambda n: {"events": {e: {"rate": float(n)} for e in chosen}}, **kwargs
        )
        self.chosen_events = chosen


def counting(n: int) -> dict[str, Any]:
    return {"value": float(n), "per_core": {"0": {"busy": 0.5}, "1": {"busy": 0.25}}}


def make_collectors(top_n: int = 10) -> list[FakeCollector]:
    spec = MetricSpec("fake_value_count", "count", "gauge", "a number that counts ticks", "value")
    cpu = FakeCollector("cpu", data=counting, catalogue=[spec])
    procs = SecretCollector(
        "processes",
        data=lambda n: {"top": [{"pid": 1, "name": "init"}], "cmdlines": {"1": "/sbin/init --secret-flag"}},
    )
    procs.top_n = top_n  # type: ignore[attr-defined]
    return [cpu, procs, EventsCollector()]


def make_sampler(interval: float = 0.2) -> Sampler:
    return Sampler(MetricsAggregator(make_collectors()), interval=interval, host="testhost")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Client(httpx.Client):
    """An httpx client usable in ``with`` after it has already sent requests (a logged-in client)."""

    def __enter__(self) -> Client:
        return self


class LiveServer:
    """create_app + uvicorn, as `perfpulse serve` configures it, on 127.0.0.1:<free port>."""

    def __init__(self, settings: Settings, app: Any, accounts: AccountStore, sampler: Sampler) -> None:
        self.settings = settings
        self.app = app
        self.accounts = accounts
        self.sampler = sampler
        self.hub = app.state.hub
        self.port = settings.port
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/api/v1/ws"
        config = uvicorn_config(settings, app, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def client(self, **kwargs: Any) -> Client:
        return Client(base_url=self.url, timeout=10, **kwargs)

    def login(self, who: tuple[str, str] = ADMIN) -> Client:
        c = self.client()
        r = c.post("/api/v1/auth/login", json={"username": who[0], "password": who[1]})
        if r.status_code != 200:
            c.close()
            raise AssertionError(f"login as {who[0]} failed: {r.status_code} {r.text}")
        return c

    def cookie(self, who: tuple[str, str] = ADMIN) -> str:
        with self.login(who) as c:
            value = c.cookies.get("perfpulse_session")
        assert value
        return value

    def wait_ticks(self, n: int, timeout: float = 10.0) -> None:
        target = self.sampler.seq + n
        deadline = time.monotonic() + timeout
        while self.sampler.seq < target:
            assert time.monotonic() < deadline, "sampler did not tick"
            time.sleep(0.02)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    started: list[LiveServer] = []

    def make(
        *,
        users: bool = True,
        sampler: Sampler | None = None,
        data_dir: Path | None = None,
        announce: Callable[[str], None] | None = None,
        history: bool = False,
        web_dir: Path | None = None,
        **overrides: Any,
    ) -> LiveServer:
        settings = Settings(
            data_dir=data_dir or tmp_path / "data",
            port=overrides.pop("port", None) or free_port(),
            **{"interval": 0.2, "access_log": True, **overrides},
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        accounts = AccountStore(settings.db_path, hasher=FAST_HASHER)
        if users and not accounts.list_users():
            accounts.add_user(*ADMIN, role="admin")
            accounts.add_user(*VIEWER, role="viewer")
        smp = sampler or make_sampler(settings.interval)
        store = None
        if history:
            from perfpulse.storage.history import History

            store = History.open(data_dir=settings.data_dir, host=smp.host)
        app = create_app(
            settings,
            sampler=smp,
            accounts=accounts,
            store=store,
            web_dir=web_dir,
            announce=announce or (lambda _m: None),
        )
        srv = LiveServer(settings, app, accounts, smp).start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory()


def run(coro: Any) -> Any:
    return asyncio.run(coro)
