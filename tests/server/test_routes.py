"""What the read-only routes answer, and what is served at /."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from server_support import VIEWER, LiveServer, ServerFactory

from perfpulse import __version__


def test_system_describes_machine_and_daemon(server: LiveServer) -> None:
    with server.login(VIEWER) as c:
        info = c.get("/api/v1/system").json()
    assert info["hostname"] == socket.gethostname()
    assert info["kernel"] == os.uname().release
    assert info["cpus_logical"] == os.cpu_count()
    assert info["memory_bytes"] > 0
    assert info["perfpulse"]["version"] == __version__
    perf = info["perf"]
    assert perf["perf_event_paranoid"] == int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    assert perf["root"] == (os.geteuid() == 0)
    # The full diagnosis from `perfpulse check`, per event.
    assert perf["probe"]["paranoid"] == perf["perf_event_paranoid"]
    assert perf["probe"]["events"]
    assert all({"event", "ok"} <= set(e) for e in perf["probe"]["events"])
    assert info["perfpulse"]["websocket"]["max_clients"] == server.settings.max_connections
    assert info["perfpulse"]["sampler"]["seq"] >= 1


def test_collectors_lists_availability_and_catalogue(server_factory: ServerFactory) -> None:
    from server_support import make_sampler

    sampler = make_sampler()
    procs = sampler.aggregator.get("processes")
    assert procs is not None
    procs.reason = "needs /proc/<pid>/cmdline"  # type: ignore[attr-defined]
    procs._hint = "mount /proc"  # type: ignore[attr-defined]
    srv = server_factory(sampler=sampler)
    with srv.login(VIEWER) as c:
        body = c.get("/api/v1/collectors").json()
    by = {x["name"]: x for x in body["collectors"]}
    assert by["cpu"]["available"] is True and by["cpu"]["enabled"] is True
    assert by["cpu"]["catalogue"][0] == {
        "name": "fake_value_count",
        "unit": "count",
        "kind": "gauge",
        "description": "a number that counts ticks",
        "labels": [],
        "path": "value",
    }
    assert by["cpu"]["last"]["error"] is None
    assert by["processes"]["available"] is False
    assert by["processes"]["reason"] == "needs /proc/<pid>/cmdline"
    assert by["processes"]["hint"] == "mount /proc"
    assert by["processes"]["sensitive"] == ["cmdlines"]


def test_root_without_a_built_dashboard_says_so(server_factory: ServerFactory, tmp_path: Path) -> None:
    srv = server_factory(web_dir=tmp_path / "no-web")
    with srv.client() as client:
        r = client.get("/")
        assert r.status_code == 200
        assert "dashboard is not built" in r.text.replace("\n", " ")
        assert "/api/v1/openapi.json" in r.text
        assert "<script" not in r.text


def test_built_dashboard_is_served_with_client_side_routes(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text('<!doctype html><script type="module" src="/assets/app.js"></script>')
    (web / "assets" / "app.js").write_text("console.log(1)")
    srv = server_factory(web_dir=web)
    with srv.client() as client:
        assert "app.js" in client.get("/").text
        assert client.get("/assets/app.js").text == "console.log(1)"
        assert "app.js" in client.get("/history/compare").text  # a client-side route
        assert client.get("/api/v1/nope").status_code == 404
        assert client.get("/api/v1/snapshot").status_code == 401
