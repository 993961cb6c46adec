"""What it costs the daemon to re-check the credentials of N open WebSockets.

The hub's check (``Hub.revalidate`` over ``AccountStore.live_credentials``: one batched primary-key lookup of
the distinct sessions in use) against its peer, the obvious alternative of re-running the handshake's
``lookup_session`` once per socket. Both run against the same real SQLite account database (WAL, as the
daemon opens it) holding N sessions, a tenth of them revoked. Reported: median wall and CPU time of the
lookup, and of the whole check as the hub runs it (the lookup runs in a worker thread, so this is time
off the event loop, not on it).

    .venv/bin/python -m bench.ws_revocation [--clients 100,1000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from argon2 import PasswordHasher

from perfpulse.server.accounts import AccountStore, digest
from perfpulse.server.hub import Hub

IDLE = 3600.0


def _timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn`` over ``rounds`` runs."""
    walls, cpus = [], []
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def measure(n: int, rounds: int, directory: Path) -> dict[str, float]:
    store = AccountStore(directory / f"bench-{n}.db", hasher=PasswordHasher(time_cost=1, memory_cost=8192))
    try:
        user = store.add_user(f"user{n}", "bench-password-1")
        cookies = [store.create_session(user, lifetime=86400) for _ in range(n)]
        for cookie in cookies[: n // 10]:
            store.revoke_session(digest(cookie))
        live = cookies[n // 10 :]

        sids = frozenset(digest(c) for c in cookies)

        def batched() -> None:
            alive, _ = store.live_credentials(sids, frozenset(), idle=IDLE)
            assert len(alive) == len(live)

        def per_socket() -> None:
            alive = sum(store.lookup_session(c, idle=IDLE) is not None for c in live)
            assert alive == len(live)

        # The whole check as the daemon runs it (snapshot of ids, thread hop, closing the revoked ones).
        hop = []
        for _ in range(rounds):
            hub = Hub(max_clients=n)
            for cookie in cookies:
                hub.reserve()
                hub.attach(admin=False, username=user.username, subs=None, session_id=digest(cookie))
            asyncio.run(hub.revalidate(lambda s, t: store.live_credentials(s, t, idle=IDLE)))
            assert hub.revoked == n // 10
            hop.append(hub.last_check_seconds)
        b_wall, b_cpu = _timed(batched, rounds)
        p_wall, p_cpu = _timed(per_socket, rounds)
        return {
            "batched_ms": b_wall * 1e3,
            "batched_cpu_ms": b_cpu * 1e3,
            "check_ms": statistics.median(hop) * 1e3,
            "per_socket_ms": p_wall * 1e3,
            "per_socket_cpu_ms": p_cpu * 1e3,
        }
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="100,1000")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    sizes = [int(x) for x in args.clients.split(",") if x.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        print(
            "| sockets | batched lookup (ms) | its CPU (ms) | whole check incl. thread hop (ms) "
            "| per-socket lookups (ms) | per-socket / batched |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for n in sizes:
            r = measure(n, args.rounds, Path(tmp))
            ratio = r["per_socket_ms"] / r["batched_ms"] if r["batched_ms"] > 0 else float("inf")
            print(
                f"| {n} | {r['batched_ms']:.2f} | {r['batched_cpu_ms']:.2f} | {r['check_ms']:.2f} "
                f"| {r['per_socket_ms']:.2f} | {ratio:.1f}x |"
            )


if __name__ == "__main__":
    main()
