"""WebSocket fan-out: tick-to-client latency and server CPU for N loopback clients at 1 Hz.

Two servers, same app, same payload, same clients, run one after the other in this process's run:

* ``hub``   — perfpulse's Hub: each tick serialized once per view, per-client bounded queues.
* ``naive`` — the obvious broadcast: for every client in turn, serialize the snapshot and await the send.
* ``lean``  — the Hub with clients that ask for lean ticks (``lean=1``, as the dashboard does): the
  collectors' sticky keys (perf events that cannot be counted, command lines) only when they change, which
  in a replayed snapshot is never after the first tick.

The server runs in its own process (so its CPU time is its own, read from /proc/<pid>/stat), the clients in
another: minimal hand-framed WebSocket clients on uvloop with a read-only API token, cheap enough that the
latencies measured are the server's rather than those of one Python process parsing 1,000 sockets. The payload is a real Snapshot of this machine's
collectors, taken once and replayed every tick, with the seq and timestamps of each tick.

    .venv/bin/python -m bench.ws_fanout [--clients 100,500,1000] [--seconds 20] [--modes hub,naive,lean]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TICK_RE = re.compile(rb'^\{"type":"tick","seq":(\d+),"host":"[^"]*","wall_time":([0-9.eE+-]+)')


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- server side ------------------------------------------------------------------------------------------


def serve(port: int, data_dir: str, mode: str) -> None:
    """The server process: a Sampler replaying a captured Snapshot at 1 Hz, behind the real app."""
    _raise_nofile()
    import orjson
    import uvicorn
    from starlette.websockets import WebSocket

    from perfpulse.collectors.aggregator import MetricsAggregator
    from perfpulse.commands.serve import uvicorn_config
    from perfpulse.config import Settings
    from perfpulse.model import Snapshot
    from perfpulse.sampler import Sampler, build_default
    from perfpulse.server.accounts import AccountStore
    from perfpulse.server.app import create_app
    from perfpulse.server.hub import Client, Hub
    from perfpulse.testing import FakeCollector

    async def capture() -> tuple[Snapshot, dict[str, frozenset[str]], dict[str, frozenset[str]]]:
        """One real snapshot, and the collectors' sensitive and sticky keys (the latter for ``lean`` only)."""
        real = build_default(interval=1.0)
        await real.tick()
        await asyncio.sleep(1.0)
        snap = await real.tick()
        found = real.aggregator.collectors()
        sensitive = {c.name: c.sensitive for c in found if c.sensitive}
        sticky = {c.name: c.sticky for c in found if c.sticky and mode == "lean"}
        await real.aclose()
        return snap, sensitive, sticky

    template, sensitive, sticky = asyncio.run(capture())

    class Replay(FakeCollector):
        pass

    collectors = []
    for name, data in template.data.items():
        attrs = {"sensitive": sensitive.get(name, frozenset()), "sticky": sticky.get(name, frozenset())}
        cls = type(f"Replay_{name}", (Replay,), attrs)
        collectors.append(cls(name, data=dict(data)))
    sampler = Sampler(MetricsAggregator(collectors), interval=1.0, host="bench")

    class NaiveHub(Hub):
        """Serialize per client, await each client in turn."""

        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            self.sockets: dict[int, tuple[WebSocket, Client]] = {}

        async def run(self, ws: WebSocket, client: Client, on_message: Any) -> str:  # type: ignore[override]
            while client.control:  # the hello
                await ws.send_bytes(client.control.popleft())
            self.sockets[client.id] = (ws, client)
            try:
                while (await ws.receive())["type"] != "websocket.disconnect":
                    pass
            finally:
                self.sockets.pop(client.id, None)
                self.detach(client)
            return "closed"

        async def broadcast_naive(self, snap: Snapshot) -> None:
            for ws, client in list(self.sockets.values()):
                body = snap.as_dict()
                if not client.admin:
                    for name, keys in sensitive.items():
                        entry = body["collectors"].get(name)
                        if entry:
                            entry["data"] = {k: v for k, v in entry["data"].items() if k not in keys}
                msg = {
                    "type": "tick",
                    "seq": snap.seq,
                    "host": snap.host,
                    "wall_time": snap.wall_time,
                    **body,
                }
                try:
                    await ws.send_text(orjson.dumps(msg).decode())
                except Exception:  # a client that went away mid-broadcast
                    self.sockets.pop(client.id, None)

    settings = Settings(
        port=port, data_dir=Path(data_dir), interval=1.0, access_log=False, max_connections=5000
    )
    accounts = AccountStore(settings.db_path)
    user = accounts.add_user("bench", "bench-password", "admin")
    token, _ = accounts.create_token(user, "bench")
    hub: Hub
    sinks = {}
    if mode == "naive":
        naive = NaiveHub(max_clients=5000, ring_seconds=0, sensitive=lambda: sensitive)
        naive.publish = lambda snap: None  # type: ignore[method-assign]
        sinks["naive"] = naive.broadcast_naive
        hub = naive
    else:
        hub = Hub(max_clients=5000, ring_seconds=0, sensitive=lambda: sensitive, sticky=lambda: sticky)
    app = create_app(
        settings, sampler=sampler, accounts=accounts, hub=hub, sinks=sinks, announce=lambda m: None
    )
    size = len(orjson.dumps(template.as_dict()))
    print(json.dumps({"token": token, "payload_bytes": size}), flush=True)
    uvicorn.Server(uvicorn_config(settings, app, log_level="warning")).run()


# -- client side ------------------------------------------------------------------------------------------


class _RawClient(asyncio.Protocol):
    """A minimal WebSocket client (RFC 6455 framing by hand, uvloop underneath), so the measuring side costs
    a few microseconds per message and the latencies are the server's, not a Python client library's."""

    def __init__(
        self, request: bytes, ready: asyncio.Future[None], record: Any, *, stall: bool = False
    ) -> None:
        self.stall = stall
        self.request = request
        self.ready = ready
        self.record = record
        self.buf = bytearray()
        self.upgraded = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    self.ready.set_exception(RuntimeError(bytes(buf[:200]).decode(errors="replace")))
                return
            del buf[: end + 4]
            self.upgraded = True
            if self.stall:
                # Never read again: the server's writes to this socket back up once the buffers fill.
                self.transport.pause_reading()
                self.ready.set_result(None)
                return
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            ln = buf[1] & 0x7F
            hdr = 2
            if ln == 126:
                if len(buf) < 4:
                    return
                ln, hdr = int.from_bytes(buf[2:4], "big"), 4
            elif ln == 127:
                if len(buf) < 10:
                    return
                ln, hdr = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < hdr + ln:
                return
            head = bytes(buf[hdr : hdr + min(ln, 200)])
            payload_for_pong = bytes(buf[hdr : hdr + ln]) if opcode == 0x9 else b""
            del buf[: hdr + ln]
            if opcode == 0x9 and self.transport is not None:  # ping -> masked pong (zero mask key)
                self.transport.write(
                    bytes([0x8A, 0x80 | len(payload_for_pong)]) + b"\0\0\0\0" + payload_for_pong
                )
            elif opcode in (0x1, 0x2):  # text (the naive server) or binary (the hub)
                if not self.ready.done():
                    self.ready.set_result(None)  # the hello
                else:
                    self.record(head, ln)


def clients(
    port: int, token: str, n: int, seconds: float, stalled: int = 0, warmup: float = 3.0, query: str = ""
) -> None:
    """The client process: n connections; per tick received, latency = arrival - the tick's wall time."""
    _raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    lat: list[float] = []
    seqs: set[int] = set()
    received = [0]
    nbytes = [0]
    measuring = [False]
    request = (
        f"GET /api/v1/ws?backfill=0{query} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()

    def record(head: bytes, size: int) -> None:
        now = time.time()
        m = TICK_RE.match(head)
        if m and measuring[0]:
            lat.append(now - float(m.group(2)))
            received[0] += 1
            nbytes[0] += size
            seqs.add(int(m.group(1)))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transports = []
        for _ in range(stalled):  # first, so a broadcast that walks clients in order meets them first
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.setblocking(False)
            gate: asyncio.Future[None] = loop.create_future()
            tr, _proto = await loop.create_connection(
                lambda gate=gate: _RawClient(request, gate, record, stall=True), sock=sock
            )
            transports.append(tr)
            await asyncio.wait_for(gate, 30)
        for _ in range(n):
            ready: asyncio.Future[None] = loop.create_future()
            tr, _proto = await loop.create_connection(
                lambda ready=ready: _RawClient(request, ready, record), "127.0.0.1", port
            )
            transports.append(tr)
            await asyncio.wait_for(ready, 30)
        await asyncio.sleep(warmup)  # warm-up (long with a stalled peer: the kernel buffers must fill first)
        cpu0 = time.process_time()
        print("start", flush=True)
        measuring[0] = True
        await asyncio.sleep(seconds)
        measuring[0] = False
        print("stop", flush=True)
        cpu = time.process_time() - cpu0
        out = {
            "latencies": lat,
            "received": received[0],
            "bytes": nbytes[0],
            "ticks": len(seqs),
            "client_cpu": cpu / seconds,
        }
        print(json.dumps(out), flush=True)
        for tr in transports:
            tr.close()

    asyncio.run(main())


# -- driver -----------------------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_one(mode: str, n: int, seconds: float, stalled: int = 0, warmup: float = 3.0) -> dict[str, Any]:
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.ws_fanout", "--_serve", str(port), tmp, mode],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("server did not start") from None
                    time.sleep(0.1)
            cl = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.ws_fanout",
                    "--_clients",
                    str(port),
                    info["token"],
                    str(n),
                    str(seconds),
                    str(stalled),
                    str(warmup),
                    "&lean=1" if mode == "lean" else "",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert cl.stdout is not None
            assert cl.stdout.readline().strip() == "start"
            c0, t0 = _cpu_seconds(server.pid), time.monotonic()
            assert cl.stdout.readline().strip() == "stop"
            c1, t1 = _cpu_seconds(server.pid), time.monotonic()
            result = json.loads(cl.stdout.readline())
            cl.wait(timeout=30)
        finally:
            server.terminate()
            server.wait(timeout=30)
    lat = result["latencies"]
    expected = result["ticks"] * n
    return {
        "mode": mode,
        "clients": n,
        "stalled": stalled,
        "payload_bytes": info["payload_bytes"],
        "p50_ms": _pct(lat, 0.50) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "server_cpu_pct": (c1 - c0) / (t1 - t0) * 100,
        "client_cpu_pct": result["client_cpu"] * 100,
        "delivered": result["received"] / expected if expected else 0.0,
        "bytes_per_tick": result["bytes"] / result["received"] if result["received"] else float("nan"),
        "ticks": result["ticks"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="100,500,1000")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--modes", default="hub,naive")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument(
        "--stalled-warmup",
        type=float,
        default=0.0,
        help="also run with one peer that never reads, measuring after this many seconds (the kernel's "
        "socket buffers, up to tcp_wmem's 4 MiB, must fill before a broadcast can block on it)",
    )
    p.add_argument("--stalled-clients", type=int, default=100, help="readers beside the stalled peer")
    args = p.parse_args(argv)
    rows = []
    sizes = [int(x) for x in args.clients.split(",")]
    plan = [(n, 0) for n in sizes]
    if args.stalled_warmup > 0:
        plan.append((args.stalled_clients, 1))
    for n, stalled in plan:
        for mode in args.modes.split(","):
            row = run_one(mode, n, args.seconds, stalled, args.stalled_warmup if stalled else 3.0)
            rows.append(row)
            print(
                f"# {mode} n={n}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})}",
                file=sys.stderr,
                flush=True,
            )
    print("## WebSocket fan-out\n")
    print(
        f"Payload: one real Snapshot of this machine, {rows[0]['payload_bytes']} bytes as JSON, 1 tick/s, "
        f"{args.seconds:g} s measured per row after a 3 s warm-up"
        + (f" ({args.stalled_warmup:g} s with the stalled peer).\n" if args.stalled_warmup > 0 else ".\n")
    )
    print(
        "| clients | server | p50 ms | p99 ms | max ms | server CPU % of a core | ticks delivered | client CPU % "
        "| bytes per tick and client |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        who = f"{r['clients']} + {r['stalled']} stalled" if r["stalled"] else str(r["clients"])
        print(
            f"| {who} | {r['mode']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
            f"{r['server_cpu_pct']:.1f} | {r['delivered'] * 100:.1f}% | {r['client_cpu_pct']:.1f} | "
            f"{r['bytes_per_tick']:,.0f} |"
        )
    by = {(r["mode"], r["clients"]): r for r in rows if not r["stalled"]}
    ratios = []
    for n in sorted({r["clients"] for r in rows}):
        h, nv = by.get(("hub", n)), by.get(("naive", n))
        if h and nv:
            ratios.append(
                f"| {n} | {nv['p99_ms'] / h['p99_ms']:.1f}x | {nv['server_cpu_pct'] / max(h['server_cpu_pct'], 0.01):.1f}x |"
            )
    if ratios:
        print("\n| clients | naive/hub p99 latency | naive/hub server CPU |\n|---:|---:|---:|")
        print("\n".join(ratios))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_serve":
        serve(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    elif len(sys.argv) > 1 and sys.argv[1] == "--_clients":
        clients(
            int(sys.argv[2]),
            sys.argv[3],
            int(sys.argv[4]),
            float(sys.argv[5]),
            int(sys.argv[6]),
            float(sys.argv[7]),
            sys.argv[8] if len(sys.argv) > 8 else "",
        )
    else:
        main()
