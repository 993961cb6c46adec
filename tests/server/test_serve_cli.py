"""`perfpulse serve` and `perfpulse user` as a user runs them: real processes, real signals, real TLS."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_support import free_port
from support import require_tool

PERFPULSE = [sys.executable, "-m", "perfpulse.cli"]


def cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PERFPULSE, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


def wait_up(url: str, proc: subprocess.Popen[str], verify: object = True) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(url + "/api/v1/health", verify=verify, timeout=1).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not come up")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*PERFPULSE, "serve", "--port", str(port), "--data-dir", str(data), "--interval", "0.5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, proc)
        yield proc, url, data
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_refuses_a_network_bind_without_tls(tmp_path: Path) -> None:
    r = cli("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "refusing to listen on 0.0.0.0 without TLS" in r.stderr
    assert "--certfile" in r.stderr and "--behind-proxy" in r.stderr
    r = cli("serve", "--host", "0.0.0.0", "--behind-proxy", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "--trusted-proxies" in r.stderr
    r = cli("serve", "--interval", "0", "--data-dir", str(tmp_path))
    assert r.returncode == 2
    assert "interval" in r.stderr and "greater than or equal to 0.1" in r.stderr


def test_first_start_announces_setup_and_sigterm_stops_within_5_s(
    daemon: tuple[subprocess.Popen[str], str, Path],
) -> None:
    proc, url, data = daemon
    token = (data / "setup-token").read_text().strip()
    assert (data / "setup-token").stat().st_mode & 0o777 == 0o600
    assert httpx.get(url + "/api/v1/setup").json() == {"required": True}
    # Real collectors are running: perf file descriptors may be open now.
    time.sleep(1.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=10)
    took = time.monotonic() - t0
    # uvicorn re-raises the signal once shut down; systemd counts death by SIGTERM as a clean stop.
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert "Traceback" not in err
    assert took < 5.0
    assert "no admin account exists yet" in err
    assert str(data / "setup-token") in err
    assert token not in err  # not a terminal: the token stays in its file


def test_user_command_manages_accounts_of_a_running_daemon(
    daemon: tuple[subprocess.Popen[str], str, Path],
) -> None:
    _proc, url, data = daemon
    d = ["--data-dir", str(data)]
    r = cli("user", *d, "add", "ops", "--role", "admin", "--password-stdin", stdin="ops-password-1\n")
    assert r.returncode == 0, r.stderr
    assert not (data / "setup-token").exists()
    r = cli("user", *d, "add", "ops", "--password-stdin", stdin="ops-password-1\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = cli("user", *d, "add", "weak", "--password-stdin", stdin="short\n")
    assert r.returncode == 1 and "at least 8" in r.stderr
    r = cli("user", *d, "add", "view", "--password-stdin", stdin="view-password\n")
    assert r.returncode == 0
    assert cli("user", *d, "list").stdout.split() == ["ops", "admin", "view", "viewer"]
    with httpx.Client(base_url=url) as c:
        assert (
            c.post("/api/v1/auth/login", json={"username": "ops", "password": "ops-password-1"}).status_code
            == 200
        )
        assert c.get("/api/v1/users").status_code == 200
        r = cli("user", *d, "passwd", "ops", "--password-stdin", stdin="ops-password-2\n")
        assert r.returncode == 0
        assert c.get("/api/v1/users").status_code == 401  # the session ended with the password change
    assert cli("user", *d, "remove", "ops").returncode == 1  # the last admin
    assert cli("user", *d, "remove", "view").returncode == 0
    assert cli("user", *d, "remove", "nobody").returncode == 1
    r = cli("user", *d, "add", "x")  # no terminal and no --password-stdin
    assert r.returncode == 1 and "--password-stdin" in r.stderr


def test_tls_serving_sets_secure_cookies(tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = tmp_path / "data"
    assert (
        cli(
            "user",
            "--data-dir",
            str(data),
            "add",
            "a",
            "--role",
            "admin",
            "--password-stdin",
            stdin="a-password\n",
        ).returncode
        == 0
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            *PERFPULSE,
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data),
            "--certfile",
            str(cert),
            "--keyfile",
            str(key),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ctx = ssl.create_default_context(cafile=str(cert))
    url = f"https://localhost:{port}"
    try:
        wait_up(url, proc, verify=ctx)
        with httpx.Client(base_url=url, verify=ctx) as c:
            r = c.post("/api/v1/auth/login", json={"username": "a", "password": "a-password"})
            assert r.status_code == 200
            assert "secure" in r.headers["set-cookie"].lower()
            assert r.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode in (0, -signal.SIGTERM)


def test_tokens_never_appear_in_the_process_arguments() -> None:
    """Passwords are never command-line arguments (others' `ps` would show them)."""
    r = cli("user", "add", "--help")
    assert "--password " not in r.stdout and "--password=" not in r.stdout
    assert os.environ.get("PERFPULSE_PASSWORD") is None


def test_sigterm_with_open_websockets_stops_within_5_s(
    daemon: tuple[subprocess.Popen[str], str, Path],
) -> None:
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    proc, url, data = daemon
    assert (
        cli(
            "user",
            "--data-dir",
            str(data),
            "add",
            "a",
            "--role",
            "admin",
            "--password-stdin",
            stdin="a-password\n",
        ).returncode
        == 0
    )
    with httpx.Client(base_url=url) as c:
        c.post("/api/v1/auth/login", json={"username": "a", "password": "a-password"})
        cookie = c.cookies["perfpulse_session"]

    async def go() -> tuple[float, int | None]:
        conns = [
            await connect(
                url.replace("http", "ws") + "/api/v1/ws",
                additional_headers={"Cookie": f"perfpulse_session={cookie}"},
            )
            for _ in range(5)
        ]
        for ws in conns:
            await ws.recv()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        codes = []
        for ws in conns:
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as exc:
                codes.append(exc.rcvd.code if exc.rcvd else None)
        await asyncio.to_thread(proc.wait, 10)
        return time.monotonic() - t0, codes[0]

    took, code = asyncio.run(go())
    assert took < 5.0
    assert code in (1001, 1012)  # going away / service restart
    assert proc.returncode in (0, -signal.SIGTERM)
