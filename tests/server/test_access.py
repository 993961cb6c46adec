"""Every access rule, against the real app on a real loopback port."""

from __future__ import annotations

import logging
import socket
import sqlite3
import statistics
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from server_support import ADMIN, VIEWER, LiveServer, ServerFactory, run
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from perfpulse.server.accounts import AccountStore

PROTECTED_GETS = [
    "/api/v1/snapshot",
    "/api/v1/collectors",
    "/api/v1/system",
    "/api/v1/config",
    "/api/v1/metrics",
    "/api/v1/users",
    "/api/v1/tokens",
]


LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "perfpulse")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def arm(self) -> None:
        """Uvicorn reconfigures its loggers (levels, handlers) when its server is configured; attach again."""
        for n in LOGGERS:
            logger = logging.getLogger(n)
            logger.setLevel(logging.DEBUG)
            if self not in logger.handlers:
                logger.addHandler(self)


@pytest.fixture
def logs() -> Iterator[Capture]:
    cap = Capture()
    names = LOGGERS
    old = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).addHandler(cap)
        logging.getLogger(n).setLevel(logging.DEBUG)
    yield cap
    for n in names:
        logging.getLogger(n).removeHandler(cap)
        logging.getLogger(n).setLevel(old[n])


def test_everything_but_login_needs_credentials(server: LiveServer) -> None:
    with server.client() as c:
        for path in PROTECTED_GETS:
            r = c.get(path)
            assert r.status_code == 401, path
            assert r.json() == {"detail": "not authenticated"}
        assert c.put("/api/v1/config", json={"interval": 1}).status_code == 401
        # What an anonymous visitor may see reveals nothing about the machine.
        assert c.get("/api/v1/health").json() == {"status": "ok"}
        assert c.get("/api/v1/setup").json() == {"required": False}


def test_session_cookie_is_httponly_strict_and_not_secure_on_plain_http(server: LiveServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
        assert r.status_code == 200
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "secure" not in cookie
        assert c.get("/api/v1/auth/me").json() == {"username": "alice", "role": "admin", "via": "session"}
        for path in PROTECTED_GETS:
            assert c.get(path).status_code == 200, path


def test_forged_session_is_refused(server: LiveServer) -> None:
    real = server.cookie()
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    with server.client(cookies={"perfpulse_session": forged}) as c:
        assert c.get("/api/v1/snapshot").status_code == 401
    with server.client(cookies={"perfpulse_session": "x" * 5000}) as c:
        assert c.get("/api/v1/snapshot").status_code == 401
    with server.client(cookies={"perfpulse_session": real}) as c:
        assert c.get("/api/v1/snapshot").status_code == 200


def test_expired_and_idle_sessions_are_refused(server: LiveServer) -> None:
    expired = server.cookie()
    idle = server.cookie()
    db = sqlite3.connect(server.settings.db_path)
    from perfpulse.server.accounts import digest

    with db:
        db.execute("UPDATE auth_sessions SET expires_at = ? WHERE id = ?", (time.time() - 1, digest(expired)))
        stale = time.time() - server.settings.session_idle_seconds - 1
        db.execute("UPDATE auth_sessions SET last_seen = ? WHERE id = ?", (stale, digest(idle)))
    db.close()
    for cookie in (expired, idle):
        with server.client(cookies={"perfpulse_session": cookie}) as c:
            assert c.get("/api/v1/snapshot").status_code == 401
    # A refused session is also deleted.
    assert server.accounts.session_count(ADMIN[0]) == 0


def test_logout_revokes_the_session(server: LiveServer) -> None:
    cookie = server.cookie()
    with server.client(cookies={"perfpulse_session": cookie}) as c:
        assert c.post("/api/v1/auth/logout").status_code == 204
    with server.client(cookies={"perfpulse_session": cookie}) as c:
        assert c.get("/api/v1/snapshot").status_code == 401


def test_password_change_revokes_every_other_session(server: LiveServer) -> None:
    other = server.cookie(VIEWER)
    with server.login(VIEWER) as c:
        bad = c.post(
            "/api/v1/auth/password", json={"current_password": "nope-nope", "new_password": "x" * 12}
        )
        assert bad.status_code == 401
        r = c.post(
            "/api/v1/auth/password", json={"current_password": VIEWER[1], "new_password": "new-secret-99"}
        )
        assert r.status_code == 200
        assert c.get("/api/v1/snapshot").status_code == 200  # this browser got a fresh session
    with server.client(cookies={"perfpulse_session": other}) as c:
        assert c.get("/api/v1/snapshot").status_code == 401
    with server.client() as c:
        r = c.post("/api/v1/auth/login", json={"username": VIEWER[0], "password": VIEWER[1]})
        assert r.status_code == 401
    server.login((VIEWER[0], "new-secret-99")).close()


def test_cli_password_change_revokes_sessions_of_the_running_daemon(server: LiveServer) -> None:
    cookie = server.cookie(VIEWER)
    other = AccountStore(server.settings.db_path)  # what `perfpulse user passwd` opens
    other.set_password(VIEWER[0], "changed-elsewhere")
    other.close()
    with server.client(cookies={"perfpulse_session": cookie}) as c:
        assert c.get("/api/v1/snapshot").status_code == 401


def test_viewer_cannot_administer(server: LiveServer) -> None:
    with server.login(VIEWER) as c:
        assert c.get("/api/v1/snapshot").status_code == 200
        assert c.get("/api/v1/config").status_code == 200
        assert c.put("/api/v1/config", json={"interval": 1}).status_code == 403
        assert c.get("/api/v1/users").status_code == 403
        assert c.post("/api/v1/users", json={"username": "eve", "password": "p" * 10}).status_code == 403
        assert c.delete(f"/api/v1/users/{ADMIN[0]}").status_code == 403
        assert c.get("/api/v1/tokens").status_code == 403
        assert c.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    assert server.accounts.get_user("eve") is None


def test_viewers_never_see_sensitive_data(server: LiveServer) -> None:
    with server.login(VIEWER) as c:
        procs = c.get("/api/v1/snapshot").json()["collectors"]["processes"]["data"]
        assert "cmdlines" not in procs
        assert procs["top"] == [{"pid": 1, "name": "init"}]
    with server.login(ADMIN) as c:
        procs = c.get("/api/v1/snapshot").json()["collectors"]["processes"]["data"]
        assert procs["cmdlines"] == {"1": "/sbin/init --secret-flag"}


def test_api_tokens_are_read_only_and_hashed_at_rest(server: LiveServer) -> None:
    with server.login(ADMIN) as admin:
        r = admin.post("/api/v1/tokens", json={"name": "prometheus"})
        assert r.status_code == 201
        token, token_id = r.json()["token"], r.json()["id"]
        listed = admin.get("/api/v1/tokens").json()
        assert [t["name"] for t in listed] == ["prometheus"]
        assert "token" not in listed[0]
    assert token.encode() not in server.settings.db_path.read_bytes()
    bearer = {"Authorization": f"Bearer {token}"}
    with server.client(headers=bearer) as c:
        m = c.get("/api/v1/metrics")
        assert m.status_code == 200
        assert m.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert "perfpulse_fake_value_count" in m.text
        assert "cmdlines" not in c.get("/api/v1/snapshot").text  # a token is a viewer
        assert c.put("/api/v1/config", json={"interval": 1}).status_code == 403
        assert c.post("/api/v1/tokens", json={"name": "more"}).status_code == 403
        assert (
            c.post("/api/v1/auth/password", json={"current_password": "a", "new_password": "b"}).status_code
            == 403
        )
    with server.client(headers={"Authorization": f"Bearer {token}x"}) as c:
        assert c.get("/api/v1/metrics").status_code == 401
    with server.client(headers={"Authorization": f"Basic {token}"}) as c:
        assert c.get("/api/v1/metrics").status_code == 401
    with server.login(ADMIN) as admin:
        assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 204
        assert admin.delete(f"/api/v1/tokens/{token_id}").status_code == 404
    with server.client(headers=bearer) as c:
        assert c.get("/api/v1/metrics").status_code == 401


def _login(c: httpx.Client, user: str, password: str, **headers: str) -> httpx.Response:
    return c.post("/api/v1/auth/login", json={"username": user, "password": password}, headers=headers)


def test_unknown_user_and_wrong_password_answer_alike(server_factory: ServerFactory) -> None:
    from argon2 import PasswordHasher

    srv = server_factory(login_failures_per_client=1000, login_failures_per_user=1000)
    # The production hash cost, so the timing comparison means something.
    srv.accounts._hasher = PasswordHasher()
    srv.accounts.set_password(ADMIN[0], ADMIN[1])
    with srv.client() as c:
        wrong = _login(c, ADMIN[0], "wrong-password")
        unknown = _login(c, "mallory", "wrong-password")
        assert wrong.status_code == unknown.status_code == 401
        assert wrong.content == unknown.content
        t_wrong, t_unknown = [], []
        for _ in range(6):
            t0 = time.perf_counter()
            _login(c, ADMIN[0], "wrong-password")
            t_wrong.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            _login(c, "mallory", "wrong-password")
            t_unknown.append(time.perf_counter() - t0)
    a, b = statistics.median(t_wrong), statistics.median(t_unknown)
    assert 0.5 < a / b < 2.0, (a, b)  # without the dummy hash an unknown name answers ~100x faster


def test_thirty_bad_logins_are_throttled(server: LiveServer) -> None:
    codes = []
    with server.client() as c:
        for _ in range(30):
            codes.append(_login(c, ADMIN[0], "not-the-password").status_code)
        assert set(codes) == {401, 429}
        first_429 = codes.index(429)
        assert first_429 == server.settings.login_failures_per_client
        assert all(code == 429 for code in codes[first_429:])
        locked = _login(c, ADMIN[0], ADMIN[1])
        assert locked.status_code == 429  # even the right password: no oracle while locked
        assert int(locked.headers["retry-after"]) >= 1
        # The same client is throttled for other names too.
        assert _login(c, VIEWER[0], VIEWER[1]).status_code == 429


def test_per_user_limit_holds_across_client_addresses(server_factory: ServerFactory) -> None:
    srv = server_factory(behind_proxy=True, trusted_proxies=["127.0.0.1"], login_failures_per_client=1000)
    with srv.client() as c:
        codes = [
            _login(c, ADMIN[0], "guess", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
            for i in range(30)
        ]
        assert codes[:10] == [401] * 10
        assert set(codes[10:]) == {429}
        # Another user from the same addresses is unaffected.
        assert _login(c, VIEWER[0], VIEWER[1], **{"X-Forwarded-For": "198.51.100.1"}).status_code == 200


def test_forwarded_for_is_ignored_unless_behind_a_trusted_proxy(server: LiveServer) -> None:
    with server.client() as c:
        codes = [
            _login(c, ADMIN[0], "guess", **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(12)
        ]
    assert codes[10:] == [429, 429]


def test_wrong_host_header_is_refused(server: LiveServer) -> None:
    with server.login() as c:
        assert c.get("/api/v1/snapshot").status_code == 200
        for host in ("evil.example", "evil.example:8787", "127.0.0.1.nip.io", "localhost.evil.example"):
            r = c.get("/api/v1/snapshot", headers={"Host": host})
            assert r.status_code == 400, host
            assert r.headers["x-frame-options"] == "DENY"
        assert c.get("/api/v1/snapshot", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_allowed_hosts_extend_the_list(server_factory: ServerFactory) -> None:
    srv = server_factory(allowed_hosts=["monitor.example.org"])
    with srv.login() as c:
        assert c.get("/api/v1/snapshot", headers={"Host": "monitor.example.org"}).status_code == 200
        assert c.get("/api/v1/snapshot", headers={"Host": "other.example.org"}).status_code == 400


def test_cross_origin_writes_are_refused_and_there_is_no_cors(server: LiveServer) -> None:
    with server.login() as c:
        evil = {"Origin": "http://127.0.0.1:9999"}
        assert c.put("/api/v1/config", json={"top_n": 7}, headers=evil).status_code == 403
        assert c.post("/api/v1/auth/logout", headers={"Origin": "null"}).status_code == 403
        same = {"Origin": server.url}
        assert c.put("/api/v1/config", json={"top_n": 7}, headers=same).status_code == 200
        pre = c.options("/api/v1/config", headers={**evil, "Access-Control-Request-Method": "PUT"})
        assert "access-control-allow-origin" not in pre.headers
        r = c.get("/api/v1/snapshot", headers=evil)
        assert "access-control-allow-origin" not in r.headers


def test_security_headers(server: LiveServer) -> None:
    with server.client() as c:
        for path in ("/", "/api/v1/health", "/api/v1/snapshot", "/api/v1/openapi.json"):
            r = c.get(path)
            csp = r.headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp
            assert "'unsafe-inline'" not in csp
            assert "script-src 'self'" in csp
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
        assert c.get("/api/v1/health").headers["cache-control"] == "no-store"


def test_setup_token_flow_and_closing(server_factory: ServerFactory, tmp_path: object) -> None:
    messages: list[str] = []
    srv = server_factory(users=False, announce=messages.append)
    token_file = srv.settings.data_dir / "setup-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert str(token_file) in messages[0]
    assert token not in messages[0]  # stderr is not a terminal here: the token stays in the file
    with srv.client() as c:
        assert c.get("/api/v1/setup").json() == {"required": True}
        body = {"token": "wrong-" + token, "username": "root-admin", "password": "a-good-password"}
        assert c.post("/api/v1/setup", json=body).status_code == 403
        body["token"] = token
        r = c.post("/api/v1/setup", json=body)
        assert r.status_code == 201
        assert c.get("/api/v1/users").status_code == 200  # logged in as the new admin
        assert c.get("/api/v1/setup").json() == {"required": False}
    assert not token_file.exists()
    with srv.client() as c:
        again = {"token": token, "username": "second", "password": "another-password"}
        assert c.post("/api/v1/setup", json=again).status_code == 409
    assert srv.accounts.get_user("second") is None


def test_setup_closes_when_an_admin_is_added_from_the_command_line(server_factory: ServerFactory) -> None:
    srv = server_factory(users=False)
    token = (srv.settings.data_dir / "setup-token").read_text().strip()
    AccountStore(srv.settings.db_path).add_user("cli-admin", "cli-password", "admin")
    with srv.client() as c:
        body = {"token": token, "username": "late", "password": "late-password"}
        assert c.post("/api/v1/setup", json=body).status_code == 409


def test_user_administration(server: LiveServer) -> None:
    with server.login(ADMIN) as c:
        assert c.post("/api/v1/users", json={"username": "bob", "password": "short"}).status_code == 422
        assert c.post("/api/v1/users", json={"username": "bob", "password": "long-enough"}).status_code == 201
        assert c.post("/api/v1/users", json={"username": "BOB", "password": "long-enough"}).status_code == 409
        assert c.patch("/api/v1/users/bob", json={"role": "admin"}).status_code == 200
        assert {u["username"]: u["role"] for u in c.get("/api/v1/users").json()}["bob"] == "admin"
        assert c.delete("/api/v1/users/bob").status_code == 204
        assert c.delete("/api/v1/users/bob").status_code == 404
        assert c.delete(f"/api/v1/users/{VIEWER[0]}").status_code == 204
        # The last admin stays.
        assert c.delete(f"/api/v1/users/{ADMIN[0]}").status_code == 409
        assert c.patch(f"/api/v1/users/{ADMIN[0]}", json={"role": "viewer"}).status_code == 409


def test_demoted_admin_loses_admin_sessions(server: LiveServer) -> None:
    server.accounts.add_user("carol", "carol-password", "admin")
    carol = server.cookie(("carol", "carol-password"))
    with server.login(ADMIN) as c:
        assert c.patch("/api/v1/users/carol", json={"role": "viewer"}).status_code == 200
    with server.client(cookies={"perfpulse_session": carol}) as c:
        assert c.get("/api/v1/users").status_code == 401


# -- WebSocket ---------------------------------------------------------------------------------------------


async def _ws_status(url: str, **kwargs: object) -> int:
    try:
        async with connect(url, compression=None, **kwargs) as ws:  # type: ignore[arg-type]
            await ws.recv()
    except InvalidStatus as exc:
        return int(exc.response.status_code)
    return 101


def test_websocket_without_session_gets_no_socket(server: LiveServer) -> None:
    assert run(_ws_status(server.ws_url)) == 401
    bad = {"Cookie": "perfpulse_session=forged"}
    assert run(_ws_status(server.ws_url, additional_headers=bad)) == 401


def test_websocket_with_a_foreign_origin_is_refused(server: LiveServer) -> None:
    cookie = {"Cookie": f"perfpulse_session={server.cookie()}"}
    for origin in ("http://evil.example", f"http://127.0.0.1:{server.port + 1}", "null"):
        assert run(_ws_status(server.ws_url, additional_headers=cookie, origin=origin)) == 403, origin
    assert run(_ws_status(server.ws_url, additional_headers=cookie, origin=server.url)) == 101


def raw_handshake(server: LiveServer, host: str, cookie: str) -> bytes:
    """A hand-written upgrade request, since client libraries always send the Host they connect to."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(
            (
                "GET /api/v1/ws HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Cookie: perfpulse_session={cookie}\r\n\r\n"
            ).encode()
        )
        return s.recv(4096)


def test_websocket_with_a_wrong_host_is_refused(server: LiveServer) -> None:
    cookie = server.cookie()
    assert raw_handshake(server, "rebind.example", cookie).startswith(b"HTTP/1.1 403")
    assert raw_handshake(server, f"127.0.0.1:{server.port}", cookie).startswith(b"HTTP/1.1 101")


def test_websocket_with_a_revoked_session_is_refused(server: LiveServer) -> None:
    cookie = server.cookie()
    with server.client(cookies={"perfpulse_session": cookie}) as c:
        c.post("/api/v1/auth/logout")
    assert run(_ws_status(server.ws_url, additional_headers={"Cookie": f"perfpulse_session={cookie}"})) == 401


def test_websocket_viewer_stream_has_no_sensitive_keys(server: LiveServer) -> None:
    async def first_ticks(cookie: str) -> list[dict[str, object]]:
        out = []
        async with connect(
            server.ws_url, additional_headers={"Cookie": f"perfpulse_session={cookie}"}, compression=None
        ) as ws:
            while len(out) < 3:
                msg = orjson.loads(await ws.recv())
                if msg["type"] == "tick":
                    out.append(msg)
        return out

    for tick in run(first_ticks(server.cookie(VIEWER))):
        assert "cmdlines" not in tick["collectors"]["processes"]["data"]  # type: ignore[index]
    for tick in run(first_ticks(server.cookie(ADMIN))):
        assert "cmdlines" in tick["collectors"]["processes"]["data"]  # type: ignore[index]


def test_no_secret_reaches_the_logs(server_factory: ServerFactory, logs: Capture) -> None:
    srv = server_factory(users=False)
    logs.arm()
    setup_token = (srv.settings.data_dir / "setup-token").read_text().strip()
    secrets: list[str] = [setup_token, "first-admin-password"]
    with srv.client() as c:
        r = c.post(
            "/api/v1/setup",
            json={"token": setup_token, "username": "admin", "password": "first-admin-password"},
        )
        assert r.status_code == 201
        secrets.append(c.cookies["perfpulse_session"])
        _login(c, "admin", "wrong-password-typed")
        secrets.append("wrong-password-typed")
        api = c.post("/api/v1/tokens", json={"name": "ci"}).json()["token"]
        secrets.append(api)
    with srv.client(headers={"Authorization": f"Bearer {api}"}) as c:
        assert c.get("/api/v1/metrics").status_code == 200
    run(_ws_status(srv.ws_url, additional_headers={"Authorization": f"Bearer {api}"}))
    time.sleep(0.2)
    text = "\n".join(logs.lines)
    assert "POST /api/v1/setup" in text  # the access log is on and captured
    assert "[redacted]" in text  # debug-level header dumps were captured, and scrubbed
    for secret in secrets:
        assert secret not in text
