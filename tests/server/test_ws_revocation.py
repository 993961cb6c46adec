"""A WebSocket lives no longer than the session (or token) it was opened with.

Real server on a loopback port, real ``websockets`` clients, the real account database. Every revocation
path is driven the way it happens in production: the API, the ``perfpulse user`` command in another
process, and time passing — except that, for expiry, time is moved by rewriting ``last_seen`` /
``expires_at`` in the database from a second connection (the shortest idle timeout the settings accept is
60 s, too long to wait in a test).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import time
from typing import Any

import orjson
from server_support import ADMIN, FAST_HASHER, VIEWER, LiveServer, run
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from perfpulse.server.accounts import AccountStore, digest
from perfpulse.server.hub import CHECK_EVERY, SESSION_ENDED, Hub

#: An API revocation pokes the hub: the socket closes about as fast as a round trip, not a check period.
PROMPT = 1.5
#: A revocation the daemon does not hear of (another process, the clock) waits for the periodic check.
PERIODIC = CHECK_EVERY + 2.5

BOB = ("bob", "bob-password-12")
CLI = [sys.executable, "-m", "perfpulse.cli", "user"]


async def open_ws(
    server: LiveServer, cookie: str | None = None, token: str | None = None
) -> ClientConnection:
    hdrs = {"Cookie": f"perfpulse_session={cookie}"} if cookie else {"Authorization": f"Bearer {token}"}
    ws = await connect(server.ws_url + "?backfill=0", additional_headers=hdrs, compression=None)
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
    assert hello["type"] == "hello"
    return ws


async def closed_within(ws: ClientConnection, seconds: float) -> tuple[int, str, float]:
    """Read until the server closes the socket; (close code, reason, seconds it took)."""
    t0 = time.monotonic()
    deadline = t0 + seconds
    try:
        while True:
            await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic()))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame from the server"
        return exc.rcvd.code, exc.rcvd.reason, time.monotonic() - t0
    except TimeoutError:
        raise AssertionError(f"socket still open after {seconds} s") from None


async def still_streaming(ws: ClientConnection, ticks: int = 3) -> None:
    seqs = []
    while len(seqs) < ticks:
        msg: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        if msg["type"] == "tick":
            seqs.append(msg["seq"])
    assert seqs == sorted(seqs) and len(set(seqs)) == ticks


def test_logout_closes_only_that_sessions_socket(server: LiveServer) -> None:
    leaving = server.login(ADMIN)
    staying = server.cookie(ADMIN)  # the same user in another browser
    viewer = server.cookie(VIEWER)

    async def go() -> None:
        victim = await open_ws(server, leaving.cookies["perfpulse_session"])
        same_user = await open_ws(server, staying)
        other_user = await open_ws(server, viewer)
        r = await asyncio.to_thread(leaving.post, "/api/v1/auth/logout")
        assert r.status_code == 204
        code, reason, took = await closed_within(victim, PROMPT)
        assert (code, reason) == (SESSION_ENDED, "session ended")
        assert took < PROMPT
        await still_streaming(same_user)
        await still_streaming(other_user)
        for ws in (same_user, other_user):
            await ws.close()

    with leaving:
        run(go())
    assert server.hub.stats()["revoked"] == 1


def test_password_change_via_api_closes_every_socket_of_the_user(server: LiveServer) -> None:
    changer = server.login(VIEWER)
    other_session = server.cookie(VIEWER)
    admin = server.cookie(ADMIN)

    async def go() -> None:
        mine = await open_ws(server, changer.cookies["perfpulse_session"])
        elsewhere = await open_ws(server, other_session)
        bystander = await open_ws(server, admin)
        r = await asyncio.to_thread(
            changer.post,
            "/api/v1/auth/password",
            json={"current_password": VIEWER[1], "new_password": "victor-password-2"},
        )
        assert r.status_code == 200, r.text
        for ws in (mine, elsewhere):
            code, _, _ = await closed_within(ws, PROMPT)
            assert code == SESSION_ENDED
        # The session issued with the password change streams as usual.
        fresh = await open_ws(server, changer.cookies["perfpulse_session"])
        await still_streaming(fresh)
        await still_streaming(bystander)
        for ws in (fresh, bystander):
            await ws.close()

    with changer:
        run(go())


def test_cli_passwd_on_a_running_daemon_closes_the_socket(server: LiveServer) -> None:
    """`perfpulse user passwd` runs in another process: the daemon only learns of it from the database."""
    victim_cookie = server.cookie(VIEWER)
    bystander_cookie = server.cookie(ADMIN)
    env = {k: v for k, v in os.environ.items() if k != "PERFPULSE_CONFIG"}

    async def go() -> None:
        victim = await open_ws(server, victim_cookie)
        bystander = await open_ws(server, bystander_cookie)
        done = await asyncio.to_thread(
            subprocess.run,
            [*CLI, "--data-dir", str(server.settings.data_dir), "passwd", VIEWER[0], "--password-stdin"],
            input="victor-password-3\n",
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        code, reason, _ = await closed_within(victim, PERIODIC)
        assert (code, reason) == (SESSION_ENDED, "session ended")
        await still_streaming(bystander)
        await bystander.close()

    run(go())


def test_expired_sessions_close_their_sockets(server: LiveServer) -> None:
    idle_cookie = server.cookie(VIEWER)
    old_cookie = server.cookie(VIEWER)
    fresh_cookie = server.cookie(VIEWER)
    idle = server.settings.session_idle_seconds

    async def go() -> None:
        went_idle = await open_ws(server, idle_cookie)
        too_old = await open_ws(server, old_cookie)
        fresh = await open_ws(server, fresh_cookie)
        db = sqlite3.connect(server.settings.db_path, isolation_level=None)
        try:
            db.execute(
                "UPDATE auth_sessions SET last_seen = last_seen - ? WHERE id = ?",
                (idle + 1, digest(idle_cookie)),
            )
            db.execute(
                "UPDATE auth_sessions SET expires_at = ? WHERE id = ?", (time.time() - 1, digest(old_cookie))
            )
        finally:
            db.close()
        for ws in (went_idle, too_old):
            code, _, _ = await closed_within(ws, PERIODIC)
            assert code == SESSION_ENDED
        await still_streaming(fresh)
        await fresh.close()

    run(go())


def test_demotion_removal_and_token_revocation_close_sockets(server: LiveServer) -> None:
    server.accounts.add_user(*BOB, role="admin")
    admin = server.login(ADMIN)
    bob_admin = server.cookie(BOB)
    r = admin.post("/api/v1/tokens", json={"name": "grafana"})
    assert r.status_code == 201
    token, token_id = r.json()["token"], r.json()["id"]

    async def go() -> None:
        bob = await open_ws(server, bob_admin)
        by_token = await open_ws(server, token=token)
        bystander = await open_ws(server, admin.cookies["perfpulse_session"])

        # A demoted admin's socket is closed (it was streaming the admin view); they log in again as viewer.
        r = await asyncio.to_thread(admin.patch, "/api/v1/users/bob", json={"role": "viewer"})
        assert r.status_code == 200 and r.json()["role"] == "viewer"
        code, _, _ = await closed_within(bob, PROMPT)
        assert code == SESSION_ENDED
        as_viewer = await connect(
            server.ws_url + "?backfill=0",
            additional_headers={"Cookie": f"perfpulse_session={server.cookie(BOB)}"},
            compression=None,
        )
        assert orjson.loads(await as_viewer.recv())["role"] == "viewer"

        r = await asyncio.to_thread(admin.delete, "/api/v1/users/bob")
        assert r.status_code == 204
        code, _, _ = await closed_within(as_viewer, PROMPT)
        assert code == SESSION_ENDED

        r = await asyncio.to_thread(admin.delete, f"/api/v1/tokens/{token_id}")
        assert r.status_code == 204
        code, reason, _ = await closed_within(by_token, PROMPT)
        assert (code, reason) == (SESSION_ENDED, "token revoked")

        await still_streaming(bystander)
        await bystander.close()

    with admin:
        run(go())


def test_a_check_of_1000_sockets_is_one_batched_query(tmp_path: Any) -> None:
    """1,000 open sockets (hub clients without the network: the check never touches a socket) on 1,000
    sessions and a few tokens in a real account database; 10 sessions and 1 token are revoked."""
    store = AccountStore(tmp_path / "perfpulse.db", hasher=FAST_HASHER)
    user = store.add_user("viewer1", "viewer-password-1")
    cookies = [store.create_session(user, lifetime=3600) for _ in range(1000)]
    tokens = [store.create_token(user, f"t{i}")[1].id for i in range(3)]
    hub = Hub(max_clients=2000)
    clients = []
    for i, cookie in enumerate(cookies):
        assert hub.reserve()
        clients.append(
            hub.attach(admin=False, username="viewer1", subs=None, session_id=digest(cookie), token_id=None)
        )
        if i < len(tokens):
            assert hub.reserve()
            clients.append(hub.attach(admin=False, username="viewer1", subs=None, token_id=tokens[i]))
    for cookie in cookies[:10]:
        store.revoke_session(digest(cookie))
    store.revoke_token(tokens[0])
    calls: list[tuple[int, int]] = []

    def check(sessions: frozenset[str], toks: frozenset[int]) -> tuple[set[str], set[int]]:
        calls.append((len(sessions), len(toks)))
        return store.live_credentials(sessions, toks, idle=3600)

    try:
        ended = asyncio.run(hub.revalidate(check))
    finally:
        store.close()
    assert calls == [(1000, 3)]
    assert ended == 11
    dropped = {c.id for c in clients if c.dropped.is_set()}
    revoked = {digest(c) for c in cookies[:10]}
    assert dropped == {c.id for c in clients if c.session_id in revoked or c.token_id == tokens[0]}
    assert all(c.close_code == SESSION_ENDED for c in clients if c.dropped.is_set())
    # Generous bound for a shared 2-core machine; the measured figure is in docs/BENCHMARKS.md.
    assert hub.last_check_seconds < 0.5
