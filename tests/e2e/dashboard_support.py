"""What the dashboard's end-to-end tests share: the real daemon in a subprocess, the dashboard build, and
Debian's Chromium driven by Playwright.

Nothing here is mocked: `perfpulse serve` runs as a user would run it, on a free loopback port with its own
data directory, and the browser is the system Chromium (never a downloaded one).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from support import require

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
WEB_INDEX = ROOT / "src" / "perfpulse" / "web" / "index.html"
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PERFPULSE = [sys.executable, "-m", "perfpulse.cli"]
ADMIN = ("admin", "e2e-admin-password")
VIEWER = ("watcher", "e2e-viewer-password")


def require_chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    require(path, "needs Debian's Chromium (apt-get install chromium)")
    assert path is not None
    return path


def _newest_source() -> float:
    newest = 0.0
    for base in (FRONTEND / "src", FRONTEND / "public"):
        for p in base.rglob("*"):
            if p.is_file():
                newest = max(newest, p.stat().st_mtime)
    for name in ("index.html", "package.json", "package-lock.json", "vite.config.ts"):
        p = FRONTEND / name
        if p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def ensure_node_modules() -> str:
    npm = shutil.which("npm")
    require(npm, "needs npm (Node.js 20+) to build and unit-test the dashboard")
    assert npm is not None
    if not (FRONTEND / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True, timeout=600)
    return npm


def ensure_built() -> None:
    """The dashboard as the daemon serves it; rebuilt when missing or older than its sources."""
    if WEB_INDEX.exists() and WEB_INDEX.stat().st_mtime >= _newest_source():
        return
    npm = ensure_node_modules()
    subprocess.run([npm, "run", "build"], cwd=FRONTEND, check=True, timeout=600)
    assert WEB_INDEX.exists(), "the build did not produce src/perfpulse/web/index.html"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    """`perfpulse serve` in a subprocess; stop() and start() again keep the port and the data."""

    def __init__(self, data: Path, *, interval: float = 1.0) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.interval = interval
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data.parent / f"{data.name}.log"

    def start(self) -> Daemon:
        self.data.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *PERFPULSE,
                    *("serve", "--port", str(self.port), "--data-dir", str(self.data)),
                    *("--interval", str(self.interval), "--no-access-log", "--log-level", "warning"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"perfpulse serve exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                r = httpx.get(self.url + "/api/v1/health", timeout=1)
                if r.status_code == 200 and r.json().get("status") == "ok":
                    return self
            time.sleep(0.1)
        raise AssertionError(f"perfpulse serve did not come up: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def setup_token(self) -> str:
        return (self.data / "setup-token").read_text().strip()

    @contextlib.contextmanager
    def api(self, who: tuple[str, str] | None = ADMIN) -> Iterator[httpx.Client]:
        """An httpx client logged in as ``who`` (or anonymous)."""
        with httpx.Client(base_url=self.url, timeout=10) as c:
            if who is not None:
                r = c.post("/api/v1/auth/login", json={"username": who[0], "password": who[1]})
                assert r.status_code == 200, r.text
            yield c

    def create_admin(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as c:
            r = c.post(
                "/api/v1/setup", json={"token": self.setup_token, "username": ADMIN[0], "password": ADMIN[1]}
            )
            assert r.status_code == 201, r.text


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=require_chromium(), args=CHROMIUM_ARGS)


class Console:
    """Collects what a page reports: uncaught errors and console errors (CSP violations show up here)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
        )

    def unexpected(self, *allowed: str) -> list[str]:
        """Errors other than refusals the test provoked on purpose (the browser logs such an answer as a
        failed resource load: 401 after a session ends, 403 for a viewer, 422 for a bad value)."""
        expected = re.compile(r"Failed to load resource: the server responded with a status of (401|403|422)")
        return [e for e in self.errors if not expected.search(e) and not any(a in e for a in allowed)]


def login(page: Any, url: str, who: tuple[str, str]) -> None:
    page.goto(url + "/")
    page.fill("input[name=username]", who[0])
    page.fill("input[name=password]", who[1])
    page.click("button[type=submit]")
    page.wait_for_selector("[data-state=live]", timeout=15_000)


def shot(page: Any, name: str, *, full_page: bool = False) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
