"""The WebSocket protocol: hello, backfill, live ticks, subscriptions, limits — over real sockets."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import orjson
import pytest
from server_support import ADMIN, VIEWER, LiveServer, ServerFactory, make_sampler, run
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from perfpulse.model import CollectorMeta, Snapshot
from perfpulse.server.hub import Hub


def headers(server: LiveServer, who: tuple[str, str] = ADMIN) -> dict[str, str]:
    return {"Cookie": f"perfpulse_session={server.cookie(who)}"}


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, bytes)  # binary frames of UTF-8 JSON
    msg: dict[str, Any] = orjson.loads(raw)
    return msg


def test_hello_backfill_then_live_ticks(server: LiveServer) -> None:
    server.wait_ticks(5)
    hdrs = headers(server)

    async def go() -> None:
        async with connect(server.ws_url, additional_headers=hdrs, compression=None) as ws:
            hello = await recv(ws)
            assert hello["type"] == "hello"
            assert hello["protocol"] == 1
            assert hello["host"] == "testhost"
            assert hello["interval"] == pytest.approx(0.2)
            assert hello["role"] == "admin"
            assert set(hello["collectors"]) == {"cpu", "processes", "perf_events"}
            assert hello["collectors"]["cpu"]["catalogue"][0]["name"] == "fake_value_count"
            n = hello["backfill"]
            assert n >= 5
            seqs = [(await recv(ws))["seq"] for _ in range(n)]
            assert seqs == list(range(seqs[0], seqs[0] + n))
            assert seqs[-1] == hello["seq"] or seqs[-1] == hello["seq"] - 1 or seqs[-1] >= hello["seq"]
            live = [await recv(ws) for _ in range(3)]
            assert [m["type"] for m in live] == ["tick"] * 3
            assert [m["seq"] for m in live] == list(range(seqs[-1] + 1, seqs[-1] + 4))
            tick = live[-1]
            assert tick["collectors"]["cpu"]["data"]["value"] == float(tick["seq"])
            assert tick["collectors"]["cpu"]["meta"]["error"] is None

    run(go())


def test_backfill_covers_at_most_the_requested_seconds(server: LiveServer) -> None:
    server.wait_ticks(8)
    hdrs = headers(server)

    async def go() -> None:
        async with connect(server.ws_url + "?backfill=0", additional_headers=hdrs, compression=None) as ws:
            hello = await recv(ws)
            assert hello["backfill"] == 0
            first = await recv(ws)
            assert first["seq"] > hello["seq"] - 1
        async with connect(server.ws_url + "?backfill=0.5", additional_headers=hdrs, compression=None) as ws:
            hello = await recv(ws)
            assert 2 <= hello["backfill"] <= 4  # 0.5 s at 0.2 s per tick

    run(go())


def test_subscribe_to_a_subset(server: LiveServer) -> None:
    hdrs = headers(server)

    async def go() -> None:
        url = server.ws_url + "?collectors=cpu,nonexistent&backfill=0"
        async with connect(url, additional_headers=hdrs, compression=None) as ws:
            hello = await recv(ws)
            assert hello["subscribed"] == ["cpu"]
            err = await recv(ws)
            assert err["type"] == "error" and "nonexistent" in err["message"]
            tick = await recv(ws)
            assert set(tick["collectors"]) == {"cpu"}
            await ws.send(orjson.dumps({"type": "subscribe", "collectors": ["processes"], "backfill": 1}))
            while True:
                msg = await recv(ws)
                if msg["type"] == "subscribed":
                    break
            assert msg["collectors"] == ["processes"]
            assert msg["backfill"] >= 1
            for _ in range(msg["backfill"] + 2):
                tick = await recv(ws)
                assert set(tick["collectors"]) == {"processes"}
            await ws.send(orjson.dumps({"type": "subscribe", "collectors": None}))
            while (await recv(ws))["type"] != "subscribed":
                pass
            tick = await recv(ws)
            assert set(tick["collectors"]) == {"cpu", "processes", "perf_events"}
            await ws.send(b'{"type":"ping"}')
            while (msg := await recv(ws))["type"] != "pong":
                pass
            await ws.send(b"not json")
            while (msg := await recv(ws))["type"] != "error":
                pass
            assert "JSON" in msg["message"]

    run(go())


def test_inbound_message_over_64_kib_closes_the_socket(server: LiveServer) -> None:
    hdrs = headers(server)

    async def go() -> int | None:
        async with connect(server.ws_url, additional_headers=hdrs, compression=None, max_size=None) as ws:
            await recv(ws)
            await ws.send(b"{" + b" " * (64 * 1024 + 10) + b"}")
            try:
                while True:
                    await recv(ws)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else None

    assert run(go()) == 1009


def test_inbound_message_just_under_the_limit_is_fine(server: LiveServer) -> None:
    hdrs = headers(server)

    async def go() -> str:
        async with connect(server.ws_url, additional_headers=hdrs, compression=None) as ws:
            await recv(ws)
            pad = " " * (60 * 1024)
            await ws.send(b'{"type":"ping"' + pad.encode() + b"}")
            while (msg := await recv(ws))["type"] != "pong":
                pass
            return str(msg["type"])

    assert run(go()) == "pong"


def test_connection_cap_answers_cleanly(server_factory: ServerFactory) -> None:
    srv = server_factory(max_connections=3)
    hdrs = headers(srv)

    async def go() -> tuple[int, str]:
        held = [await connect(srv.ws_url, additional_headers=hdrs, compression=None) for _ in range(3)]
        try:
            for ws in held:
                assert (await recv(ws))["type"] == "hello"
            try:
                async with connect(srv.ws_url, additional_headers=hdrs, compression=None):
                    pass
            except InvalidStatus as exc:
                status = exc.response.status_code
                body = exc.response.body.decode()
            # A place frees up when a client leaves.
            await held.pop().close()
            await asyncio.sleep(0.2)
            async with connect(srv.ws_url, additional_headers=hdrs, compression=None) as ws:
                assert (await recv(ws))["type"] == "hello"
            return status, body
        finally:
            for ws in held:
                await ws.close()

    status, body = run(go())
    assert status == 503
    assert "connection limit" in body
    assert srv.hub.refused_full == 1


def test_each_view_is_serialized_once_per_tick(server_factory: ServerFactory) -> None:
    """30 clients in 3 views (admin-all, viewer-all, viewer-cpu): 3 messages built per tick, not 30."""
    srv = server_factory(interval=0.5)
    admin, viewer = headers(srv, ADMIN), headers(srv, VIEWER)

    async def go() -> tuple[int, int, int]:
        conns = []
        for i in range(30):
            h, q = [(admin, ""), (viewer, ""), (viewer, "&collectors=cpu")][i % 3]
            conns.append(
                await connect(srv.ws_url + "?backfill=0" + q, additional_headers=h, compression=None)
            )
        for ws in conns:
            await recv(ws)
        # Align on a tick boundary, then count over a few ticks.
        await recv(conns[0])
        before = (srv.hub.serialized_messages, srv.hub.published)
        for _ in range(3):
            await recv(conns[0])
        after = (srv.hub.serialized_messages, srv.hub.published)
        for ws in conns:
            await ws.close()
        return after[0] - before[0], after[1] - before[1], srv.hub.serialized_parts

    messages, ticks, _parts = run(go())
    assert ticks >= 3
    assert messages == 3 * ticks


def test_slow_client_is_dropped_and_others_keep_their_rate() -> None:
    """The hub alone, with a clock and a client that never drains its queue: publish never waits, the
    queue stays at its bound, and after the stall timeout the client is dropped."""
    now = [0.0]
    hub = Hub(stall_timeout=5.0, queue=2, clock=lambda: now[0])
    assert hub.reserve()
    slow = hub.attach(admin=False, username="slow", subs=None)
    assert hub.reserve()
    fast = hub.attach(admin=False, username="fast", subs=None)
    for seq in range(1, 20):
        now[0] = seq * 0.5
        t0 = time.perf_counter()
        hub.publish(tick(seq))
        assert time.perf_counter() - t0 < 0.05
        fast.ticks.clear()  # the fast client reads everything
        assert len(slow.ticks) <= 2
    assert slow.dropped.is_set()
    assert "did not read" in slow.drop_reason
    assert not fast.dropped.is_set()
    assert hub.disconnected_slow == 1


def test_a_stalled_socket_is_disconnected_by_the_server(server_factory: ServerFactory) -> None:
    """A peer that completes the handshake and then never reads: its queue overflows, it is dropped after
    the stall timeout while a reading client keeps getting every tick."""
    srv = server_factory(interval=0.1)
    srv.hub.stall_timeout = 1.5
    cookie = srv.cookie()
    big = {"blob": "x" * 200_000}
    for c in srv.sampler.aggregator.collectors():
        if c.name == "cpu":
            c.data = lambda n: {"value": float(n), **big}  # type: ignore[attr-defined]
    stalled = socket.create_connection(("127.0.0.1", srv.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        (
            f"GET /api/v1/ws?backfill=0 HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Cookie: perfpulse_session={cookie}\r\n\r\n"
        ).encode()
    )
    try:

        async def reader() -> list[int]:
            seqs = []
            async with connect(
                srv.ws_url + "?backfill=0",
                additional_headers={"Cookie": f"perfpulse_session={cookie}"},
                compression=None,
                max_size=None,
            ) as ws:
                t_end = time.monotonic() + 4.0
                while time.monotonic() < t_end:
                    msg = await recv(ws)
                    if msg["type"] == "tick":
                        seqs.append(msg["seq"])
            return seqs

        seqs = run(reader())
        assert srv.hub.disconnected_slow >= 1
        deadline = time.monotonic() + 3
        while srv.hub.clients and time.monotonic() < deadline:  # the reader's own close lands
            time.sleep(0.02)
        assert len(srv.hub.clients) == 0
        # The reader missed nothing while the other one stalled.
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert len(seqs) >= 30
    finally:
        stalled.close()


def test_shared_sampler_config_change_is_broadcast(server: LiveServer) -> None:
    hdrs = headers(server)

    async def go() -> dict[str, Any]:
        async with connect(server.ws_url + "?backfill=0", additional_headers=hdrs, compression=None) as ws:
            await recv(ws)
            with server.login() as c:
                await asyncio.to_thread(c.put, "/api/v1/config", json={"interval": 0.3})
            while (msg := await recv(ws))["type"] != "config":
                pass
            return msg

    msg = run(go())
    assert msg["interval"] == pytest.approx(0.3)
    assert msg["changed"] == ["interval"]


def test_make_sampler_is_independent() -> None:
    assert make_sampler().host == "testhost"


def tick(seq: int, blob: str = "") -> Snapshot:
    meta = {"cpu": CollectorMeta(timestamp=1000.0 + seq, duration_ms=0.1)}
    return Snapshot("h", 1000.0 + seq, float(seq), seq, 1.0, {"cpu": {"v": seq, "blob": blob}}, meta)


def test_ring_is_bounded_by_age_and_bytes() -> None:
    hub = Hub(ring_seconds=10.0, ring_max_bytes=50_000)
    for seq in range(1, 200):
        hub.publish(tick(seq, "x" * 1000))
        assert hub.ring_bytes <= 50_000
        assert hub.ring[-1].monotonic - hub.ring[0].monotonic <= 10.0
    assert len(hub.ring) == 11  # 10 s at 1 Hz, inclusive; 11 kB under the byte cap
    newest = orjson.loads(hub.message(hub.ring[-1], (False, None, False)))
    assert newest["collectors"]["cpu"]["data"]["v"] == 199
    small = Hub(ring_seconds=300.0, ring_max_bytes=20_000)
    for seq in range(1, 200):
        small.publish(tick(seq, "x" * 1000))
    assert small.ring_bytes <= 20_000
    assert len(small.ring) == small.ring_bytes // small.ring[-1].size
    assert [e.seq for e in small.recent(5.0)] == [194, 195, 196, 197, 198, 199]
