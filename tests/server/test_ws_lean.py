"""Lean ticks (``lean=1``): a collector's sticky keys go out only when they change, and a client is never left
holding a value older than the one a lean tick refers to — checked on the hub alone and over real sockets."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from server_support import ADMIN, VIEWER, LiveServer, run
from test_ws import headers, recv
from websockets.asyncio.client import connect

from perfpulse.model import CollectorMeta, Snapshot
from perfpulse.server.hub import Client, Hub

STICKY = {"perf_events": frozenset({"unsupported"}), "processes": frozenset({"cmdlines"})}
SENSITIVE = {"processes": frozenset({"cmdlines"})}


def tick(seq: int, unsupported: dict[str, str], cmdlines: dict[str, str] | None = None) -> Snapshot:
    data: dict[str, dict[str, Any]] = {
        "perf_events": {"events": {"task-clock": {"rate": float(seq)}}, "unsupported": unsupported},
        "processes": {"top": [{"pid": 1, "cpu": seq}], "cmdlines": cmdlines or {"1": "/sbin/init"}},
    }
    meta = {n: CollectorMeta(timestamp=1000.0 + seq, duration_ms=0.1) for n in data}
    return Snapshot("h", 1000.0 + seq, float(seq), seq, 1.0, data, meta)


def make_hub() -> Hub:
    return Hub(queue=2, sensitive=lambda: SENSITIVE, sticky=lambda: STICKY)


def attach(hub: Hub, *, lean: bool = True, admin: bool = True) -> Client:
    assert hub.reserve()
    return hub.attach(admin=admin, username="u", subs=None, lean=lean)


def take(client: Client) -> dict[str, Any]:
    msg: dict[str, Any] = orjson.loads(client.ticks.popleft())
    return msg


NO_PMU = {"cycles": "no hardware PMU", "instructions": "no hardware PMU"}


def test_sticky_keys_go_out_when_they_change_and_are_referred_to_while_they_do_not() -> None:
    hub = make_hub()
    lean, full = attach(hub), attach(hub, lean=False)
    hub.publish(tick(1, NO_PMU))
    first = take(lean)["collectors"]["perf_events"]
    assert first["data"]["unsupported"] == NO_PMU and "kept" not in first  # the first tick is full
    for seq in (2, 3):
        hub.publish(tick(seq, NO_PMU))
        part = take(lean)["collectors"]["perf_events"]
        assert "unsupported" not in part["data"]
        assert part["kept"] == {"unsupported": 1}  # the value first sent with tick 1
        assert part["data"]["events"]["task-clock"]["rate"] == seq  # the rest of the part is all there
    # A change: the tick carries the new value, and later ticks refer to this one.
    changed = {"cycles": "no hardware PMU"}
    hub.publish(tick(4, changed))
    part = take(lean)["collectors"]["perf_events"]
    assert part["data"]["unsupported"] == changed and "kept" not in part
    hub.publish(tick(5, changed))
    assert take(lean)["collectors"]["perf_events"]["kept"] == {"unsupported": 4}
    # A client that did not ask for lean ticks always gets everything.
    for msg in list(full.ticks):
        assert orjson.loads(msg)["collectors"]["perf_events"]["data"]["unsupported"]


def test_lean_ticks_are_smaller_and_shared_between_lean_clients() -> None:
    hub = make_hub()
    a, b, full = attach(hub), attach(hub), attach(hub, lean=False)
    hub.publish(tick(1, NO_PMU, {str(p): "/usr/bin/python3 -m worker " * 20 for p in range(50)}))
    for c in (a, b, full):
        c.ticks.clear()
    hub.publish(tick(2, NO_PMU, {str(p): "/usr/bin/python3 -m worker " * 20 for p in range(50)}))
    assert a.ticks[0] is b.ticks[0]  # one message for every lean client with this view
    assert len(a.ticks[0]) * 5 < len(full.ticks[0])
    both = orjson.loads(a.ticks[0])["collectors"]
    assert both["processes"]["kept"] == {"cmdlines": 1}
    assert both["perf_events"]["kept"] == {"unsupported": 1}


def test_a_viewer_never_gets_sensitive_keys_lean_or_not() -> None:
    hub = make_hub()
    viewer = attach(hub, admin=False)
    seen = []
    for seq in range(1, 4):
        hub.publish(tick(seq, NO_PMU))
        seen.append(viewer.ticks.popleft())
    for raw in seen:
        procs = orjson.loads(raw)["collectors"]["processes"]
        assert "cmdlines" not in procs["data"]
        assert "kept" not in procs  # nothing was left out: there was nothing to send
        assert b"/sbin/init" not in raw
    # ... while its perf_events part is lean like an admin's.
    assert orjson.loads(seen[-1])["collectors"]["perf_events"]["kept"] == {"unsupported": 1}


def test_after_an_overflow_the_next_tick_is_full() -> None:
    """The tick a full queue drops may be the one that carried a change; the tick queued then carries
    every sticky value, so the client cannot go on with a value older than the one referred to."""
    hub = make_hub()
    slow = attach(hub)
    hub.publish(tick(1, NO_PMU))
    hub.publish(tick(2, NO_PMU))
    hub.publish(tick(3, {"cycles": "changed"}))  # queue [1, 2] overflows: 1 goes, 3 (a change) is full anyway
    hub.publish(tick(4, {"cycles": "changed"}))  # overflows again: 2 goes, and 4 is sent in full
    msgs = [orjson.loads(m) for m in slow.ticks]
    assert [m["seq"] for m in msgs] == [3, 4]
    assert all(m["collectors"]["perf_events"]["data"]["unsupported"] == {"cycles": "changed"} for m in msgs)
    slow.ticks.clear()
    hub.publish(tick(5, {"cycles": "changed"}))
    assert take(slow)["collectors"]["perf_events"]["kept"] == {"unsupported": 3}


def test_resync_and_a_key_that_goes_away() -> None:
    hub = make_hub()
    c = attach(hub)
    hub.publish(tick(1, NO_PMU))
    hub.publish(tick(2, NO_PMU))
    c.ticks.clear()
    c.resync()
    hub.publish(tick(3, NO_PMU))
    assert take(c)["collectors"]["perf_events"]["data"]["unsupported"] == NO_PMU
    hub.publish(tick(4, NO_PMU))
    assert take(c)["collectors"]["perf_events"]["kept"] == {"unsupported": 1}
    # The collector stops reporting the key: it is simply absent (not "kept"), and news when it returns.
    gone = tick(5, NO_PMU)
    del gone.data["perf_events"]["unsupported"]
    hub.publish(gone)
    part = take(c)["collectors"]["perf_events"]
    assert "unsupported" not in part["data"] and "kept" not in part
    hub.publish(tick(6, NO_PMU))
    assert take(c)["collectors"]["perf_events"]["data"]["unsupported"] == NO_PMU


def test_backfill_is_full_and_primes_lean_ticks() -> None:
    hub = make_hub()
    for seq in range(1, 4):
        hub.publish(tick(seq, NO_PMU))
    c = attach(hub)
    hub.backfill(c, hub.recent(10))
    backfill = [orjson.loads(m) for m in c.control]
    assert [m["seq"] for m in backfill] == [1, 2, 3]
    assert all("kept" not in m["collectors"]["perf_events"] for m in backfill)
    hub.publish(tick(4, NO_PMU))
    assert take(c)["collectors"]["perf_events"]["kept"] == {"unsupported": 1}


def test_lean_stream_over_a_real_socket(server: LiveServer) -> None:
    """hello announces the sticky keys; the backfill is full, live ticks leave the unchanged command lines
    out; `resync` brings them back in the next tick; a viewer's lean stream has no command lines at all."""
    server.wait_ticks(3)

    async def go() -> None:
        async with connect(
            server.ws_url + "?lean=1&backfill=1", additional_headers=headers(server), compression=None
        ) as ws:
            hello = await recv(ws)
            assert hello["lean"] is True
            assert hello["sticky"] == {"processes": ["cmdlines"]}
            for _ in range(hello["backfill"]):
                back = await recv(ws)
                assert back["collectors"]["processes"]["data"]["cmdlines"] == {
                    "1": "/sbin/init --secret-flag"
                }
            live = [await recv(ws) for _ in range(3)]
            parts = [m["collectors"]["processes"] for m in live]
            assert all(
                "cmdlines" not in p["data"] and p["kept"]["cmdlines"] <= m["seq"]
                for p, m in zip(parts, live, strict=True)
            )
            await ws.send(orjson.dumps({"type": "resync"}))
            for _ in range(10):
                m = await recv(ws)
                if "cmdlines" in m["collectors"]["processes"]["data"]:
                    break
            else:
                raise AssertionError("no full tick after resync")
        async with connect(
            server.ws_url + "?lean=1&backfill=0", additional_headers=headers(server, VIEWER), compression=None
        ) as ws:
            await recv(ws)
            for _ in range(3):
                raw = await asyncio.wait_for(ws.recv(), 5)
                assert isinstance(raw, bytes) and b"secret-flag" not in raw
        async with connect(
            server.ws_url + "?backfill=0", additional_headers=headers(server, ADMIN), compression=None
        ) as ws:
            assert (await recv(ws))["lean"] is False
            assert "cmdlines" in (await recv(ws))["collectors"]["processes"]["data"]

    run(go())


def test_an_object_that_changed_in_part_goes_out_as_a_patch() -> None:
    hub = make_hub()
    c = attach(hub)
    procs = {str(p): f"/usr/lib/service-{p} --with --long --flags" for p in range(1, 21)}
    hub.publish(tick(1, NO_PMU, procs))
    assert take(c)["collectors"]["processes"]["data"]["cmdlines"] == procs
    # Tick 2: one process left the top, one came in, one changed its command line.
    now = {k: v for k, v in procs.items() if k != "3"} | {
        "77": "chromium --type=renderer",
        "5": "service-5 -x",
    }
    hub.publish(tick(2, NO_PMU, now))
    part = take(c)["collectors"]["processes"]
    assert part["patch"] == {"cmdlines": {"base": 1, "drop": ["3"]}}
    assert part["data"]["cmdlines"] == {"77": "chromium --type=renderer", "5": "service-5 -x"}
    # Unchanged at tick 3, so kept since the tick where it last changed; the patch of tick 4 builds on 3.
    hub.publish(tick(3, NO_PMU, now))
    assert take(c)["collectors"]["processes"]["kept"] == {"cmdlines": 2}
    hub.publish(tick(4, NO_PMU, {k: v for k, v in now.items() if k != "77"}))
    assert take(c)["collectors"]["processes"]["patch"] == {"cmdlines": {"base": 3, "drop": ["77"]}}
    # Most of it new: the whole value rather than a patch as large.
    other = {str(p): f"/opt/other-{p}" for p in range(100, 120)}
    hub.publish(tick(5, NO_PMU, other))
    part = take(c)["collectors"]["processes"]
    assert "patch" not in part and part["data"]["cmdlines"] == other
