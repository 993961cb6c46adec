"""Many real WebSocket clients at 1 Hz; and one that never reads, for two minutes."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import orjson
import pytest
from server_support import ADMIN, ServerFactory, free_port, run
from websockets.asyncio.client import connect

CLIENTS = 200
TICKS = 10


def raise_nofile(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def test_200_clients_at_1_hz_receive_every_tick(server_factory: ServerFactory) -> None:
    raise_nofile(4096)
    srv = server_factory(interval=1.0)
    cookie = {"Cookie": f"perfpulse_session={srv.cookie()}"}

    async def client(ready: asyncio.Event, out: list[list[int]], start: asyncio.Event) -> None:
        seqs: list[int] = []
        async with connect(srv.ws_url + "?backfill=0", additional_headers=cookie, compression=None) as ws:
            assert orjson.loads(await ws.recv())["type"] == "hello"
            out.append(seqs)
            ready.set()
            await start.wait()
            while len(seqs) < TICKS + 2:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["type"] == "tick":
                    seqs.append(msg["seq"])

    async def go() -> list[list[int]]:
        out: list[list[int]] = []
        start = asyncio.Event()
        tasks = []
        for _ in range(CLIENTS):
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(client(ready, out, start)))
            await ready.wait()
        start.set()
        await asyncio.gather(*tasks)
        return out

    results = run(go())
    assert len(results) == CLIENTS
    # Every client got a gap-free run of ticks; all clients connected before the first counted tick saw it.
    first_common = max(seqs[0] for seqs in results)
    for seqs in results:
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        window = [s for s in seqs if first_common <= s < first_common + TICKS]
        assert window == list(range(first_common, first_common + TICKS))
    assert srv.hub.dropped_ticks == 0


SERVER = textwrap.dedent(
    """
    import sys
    from perfpulse.collectors.aggregator import MetricsAggregator
    from perfpulse.commands.serve import uvicorn_config
    from perfpulse.config import Settings
    from perfpulse.sampler import Sampler
    from perfpulse.server.accounts import AccountStore
    from perfpulse.server.app import create_app
    from perfpulse.testing import FakeCollector
    import uvicorn

    port, data = int(sys.argv[1]), sys.argv[2]
    # A short backfill ring: it reaches its steady size in seconds, so any later growth is the slow peer.
    s = Settings(port=port, data_dir=data, interval=0.1, access_log=False, backfill_seconds=5)
    acc = AccountStore(s.db_path)
    acc.add_user("alice", "alice-password-1", "admin")
    blob = "x" * 50_000  # 50 kB ticks at 10 Hz: a never-reading peer fills its buffers within seconds
    sampler = Sampler(MetricsAggregator([FakeCollector("cpu", data=lambda n: {"value": n, "blob": blob})]),
                      interval=0.1, host="soak")
    app = create_app(s, sampler=sampler, accounts=acc, announce=lambda m: None)
    app.state.hub.stall_timeout = 15.0
    uvicorn.Server(uvicorn_config(s, app, log_level="warning")).run()
    """
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_a_client_that_never_reads_for_2_minutes_costs_the_others_nothing(tmp_path: Path) -> None:
    """Server in its own process so its memory is its own. One peer completes the handshake and then never
    reads for 120 s (and never answers a ping); five clients read normally at 10 Hz. The readers' rate in
    the last 20 s equals that of the first 20 s, and the server's RSS does not grow."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(tmp_path / "d")], stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        with httpx.Client(base_url=url) as c:
            c.post("/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]})
            cookie = c.cookies["perfpulse_session"]
        hdr = {"Cookie": f"perfpulse_session={cookie}"}

        stalled = socket.create_connection(("127.0.0.1", port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(
            (
                f"GET /api/v1/ws?backfill=0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\nCookie: perfpulse_session={cookie}\r\n\r\n"
            ).encode()
        )
        samples: list[tuple[float, int]] = []

        async def reader(counts: list[int]) -> None:
            async with connect(
                url.replace("http", "ws") + "/api/v1/ws?backfill=0",
                additional_headers=hdr,
                compression=None,
                max_size=None,
            ) as ws:
                end = time.monotonic() + 120
                while time.monotonic() < end:
                    msg = await asyncio.wait_for(ws.recv(), 5)
                    if msg.startswith(b'{"type":"tick"'):
                        counts[0] += 1

        async def watch(counts: list[list[int]]) -> None:
            start = time.monotonic()
            while time.monotonic() - start < 119:
                await asyncio.sleep(1)
                samples.append((time.monotonic() - start, rss_kib(proc.pid)))
                counts_now = [c[0] for c in counts]
                samples[-1] = (*samples[-1], *counts_now)  # type: ignore[assignment]

        async def go() -> None:
            counts = [[0] for _ in range(5)]
            await asyncio.gather(*(reader(c) for c in counts), watch(counts))

        run(go())
        with httpx.Client(base_url=url, cookies={"perfpulse_session": cookie}) as c:
            metrics = c.get("/api/v1/metrics").text
        stalled.close()
        dropped = [ln for ln in metrics.splitlines() if ln.startswith("perfpulse_ws_slow_disconnects_total ")]
        assert dropped and float(dropped[0].split()[1]) >= 1.0  # the stalled peer was cut off

        def rate(t0: float, t1: float) -> float:
            a = min(samples, key=lambda s: abs(s[0] - t0))
            b = min(samples, key=lambda s: abs(s[0] - t1))
            return (sum(b[2:]) - sum(a[2:])) / 5 / (b[0] - a[0])

        early, late = rate(10, 30), rate(95, 115)
        assert early > 8.0  # ~10 ticks/s per reader
        assert late == pytest.approx(early, rel=0.1)
        rss_early = min(s[1] for s in samples if 20 <= s[0] <= 30)
        rss_late = max(s[1] for s in samples if s[0] >= 100)
        print(f"reader rate early {early:.2f}/s late {late:.2f}/s; server RSS {rss_early} -> {rss_late} KiB")
        assert rss_late - rss_early < 20 * 1024, (rss_early, rss_late)  # KiB
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert os.path.exists(tmp_path / "d" / "perfpulse.db")
