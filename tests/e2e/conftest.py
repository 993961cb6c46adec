"""Fixtures for the dashboard's end-to-end tests (helpers live in dashboard_support)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import ADMIN, VIEWER, Daemon, ensure_built, launch, require_chromium


@pytest.fixture(scope="session")
def built() -> None:
    require_chromium()
    ensure_built()


# Module scope, not session: the sync API keeps an event loop running in the main thread while it is
# started, and later tests that call asyncio.run() must not inherit it.
@pytest.fixture(scope="module")
def playwright_instance(built: None) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_instance: Any) -> Iterator[Any]:
    b = launch(playwright_instance)
    yield b
    b.close()


@pytest.fixture(scope="module")
def daemon(built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for a module, with an admin and a viewer already set up."""
    d = Daemon(tmp_path_factory.mktemp("perfpulse") / "data").start()
    d.create_admin()
    with d.api(ADMIN) as c:
        r = c.post("/api/v1/users", json={"username": VIEWER[0], "password": VIEWER[1], "role": "viewer"})
        assert r.status_code == 201, r.text
    yield d
    d.stop()


@pytest.fixture
def fresh_daemon(built: None, tmp_path: Path) -> Iterator[Daemon]:
    """A daemon on its first start: no users, setup open."""
    d = Daemon(tmp_path / "data").start()
    yield d
    d.stop()
