"""WebSocket fan-out: tick-to-client latency and server CPU for N loopback clients at 1 Hz.

Two servers, same app, same payload, same clients, run one after the other in this process's run:

* ``hub``   — perfpulse's Hub: each tick serialized once per view, per-client bounded queues.
* ``naive`` — the obvious broadcast: for every client in turn, serialize the snapshot and await the send.

The server runs in its own process (so its CPU time is its own, read from /proc/<pid>/stat), the clients in
another (``websockets`` library, a read-only API token). The payload is a real Snapshot of this machine's
collectors, taken once and replayed every tick, with the seq and timestamps of each tick.

    .venv/bin/python -m bench.ws_fanout [--clients 100,500,1000] [--seconds 20] [--modes hub,naive]
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

    async def capture() -> Snapshot:
        real = build_default(interval=1.0)
        await real.tick()
        await asyncio.sleep(1.0)
        snap = await real.tick()
        await real.aclose()
        return snap

    template = asyncio.run(capture())
    sensitive = {c: frozenset({"cmdlines"}) for c in template.data if c == "processes"}

    class Replay(FakeCollector):
        pass

    collectors = []
    for name, data in template.data.items():
        cls = type(f"Replay_{name}", (Replay,), {"sensitive": sensitive.get(name, frozenset())})
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
        hub = Hub(max_clients=5000, ring_seconds=0, sensitive=lambda: sensitive)
    app = create_app(
        settings, sampler=sampler, accounts=accounts, hub=hub, sinks=sinks, announce=lambda m: None
    )
    size = len(orjson.dumps(template.as_dict()))
    print(json.dumps({"token": token, "payload_bytes": size}), flush=True)
    uvicorn.Server(uvicorn_config(settings, app, log_level="warning")).run()


# -- client side ------------------------------------------------------------------------------------------


def clients(port: int, token: str, n: int, seconds: float) -> None:
    """The client process: n connections; per tick received, latency = arrival - the tick's wall time."""
    _raise_nofile()
    from websockets.asyncio.client import connect

    lat: list[float] = []
    received = [0]
    measuring = [False]
    first_seq: list[int] = []

    async def one(ready: asyncio.Event) -> None:
        async with connect(
            f"ws://127.0.0.1:{port}/api/v1/ws?backfill=0",
            additional_headers={"Authorization": f"Bearer {token}"},
            compression=None,
            max_size=None,
            open_timeout=60,
            ping_interval=None,
        ) as ws:
            await ws.recv()  # hello
            ready.set()
            async for raw in ws:
                now = time.time()
                m = TICK_RE.match(raw[:200] if isinstance(raw, bytes) else raw[:200].encode())
                if m and measuring[0]:
                    lat.append(now - float(m.group(2)))
                    received[0] += 1
                    first_seq.append(int(m.group(1)))

    async def main() -> None:
        tasks = []
        for i in range(n):
            ready = asyncio.Event()
            tasks.append(asyncio.create_task(one(ready)))
            await ready.wait()
            if i % 50 == 49:
                await asyncio.sleep(0)
        await asyncio.sleep(3.0)  # warm-up
        cpu0 = time.process_time()
        print("start", flush=True)
        measuring[0] = True
        await asyncio.sleep(seconds)
        measuring[0] = False
        print("stop", flush=True)
        cpu = time.process_time() - cpu0
        seqs = sorted(set(first_seq))
        ticks = len(seqs)
        out = {"latencies": lat, "received": received[0], "ticks": ticks, "client_cpu": cpu / seconds}
        print(json.dumps(out), flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

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


def run_one(mode: str, n: int, seconds: float) -> dict[str, Any]:
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
        "payload_bytes": info["payload_bytes"],
        "p50_ms": _pct(lat, 0.50) * 1000,
        "p99_ms": _pct(lat, 0.99) * 1000,
        "max_ms": max(lat) * 1000 if lat else float("nan"),
        "server_cpu_pct": (c1 - c0) / (t1 - t0) * 100,
        "client_cpu_pct": result["client_cpu"] * 100,
        "delivered": result["received"] / expected if expected else 0.0,
        "ticks": result["ticks"],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", default="100,500,1000")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--modes", default="hub,naive")
    p.add_argument("--json", type=Path, help="also write the raw results here")
    args = p.parse_args(argv)
    rows = []
    for n in [int(x) for x in args.clients.split(",")]:
        for mode in args.modes.split(","):
            row = run_one(mode, n, args.seconds)
            rows.append(row)
            print(
                f"# {mode} n={n}: {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})}",
                file=sys.stderr,
                flush=True,
            )
    print("## WebSocket fan-out\n")
    print(
        f"Payload: one real Snapshot of this machine, {rows[0]['payload_bytes']} bytes as JSON, 1 tick/s, "
        f"{args.seconds:g} s measured per row after a 3 s warm-up.\n"
    )
    print(
        "| clients | server | p50 ms | p99 ms | max ms | server CPU % of a core | ticks delivered | client CPU % |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['clients']} | {r['mode']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | "
            f"{r['server_cpu_pct']:.1f} | {r['delivered'] * 100:.1f}% | {r['client_cpu_pct']:.1f} |"
        )
    by = {(r["mode"], r["clients"]): r for r in rows}
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
        clients(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
