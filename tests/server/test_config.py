"""Settings (sources and their priority, bind rules) and run-time configuration through the API."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from server_support import VIEWER, ServerFactory, make_sampler

from perfpulse.config import ConfigFileError, Settings, load_settings


def test_sources_and_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "perfpulse.toml"
    toml.write_text('interval = 2.5\nport = 9100\ncollectors = ["cpu", "memory"]\ntop_n = 20\n')
    monkeypatch.setenv("PERFPULSE_PORT", "9200")
    monkeypatch.setenv("PERFPULSE_ALLOWED_HOSTS", "a.example, b.example")
    s = load_settings(toml, top_n=30)
    assert s.interval == 2.5  # file
    assert s.port == 9200  # env beats file
    assert s.top_n == 30  # arguments beat everything
    assert s.collectors == ["cpu", "memory"]
    assert s.allowed_hosts == ["a.example", "b.example"]
    monkeypatch.setenv("PERFPULSE_CONFIG", str(toml))
    assert load_settings().interval == 2.5


def test_bad_values_and_files_say_what_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="less than or equal to 60"):
        load_settings(interval=100)
    with pytest.raises(ValidationError, match="not an IP address"):
        load_settings(trusted_proxies=["proxy.example"])
    with pytest.raises(ValidationError, match="certfile and keyfile go together"):
        load_settings(certfile=tmp_path / "c.pem")
    with pytest.raises(ConfigFileError, match="cannot read config file"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("interval = = 2")
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_settings(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("intervall = 2\n")
    with pytest.raises(ValidationError, match="intervall"):
        load_settings(typo)


def test_bind_rules() -> None:
    assert Settings().host == "127.0.0.1"
    assert Settings().bind_problem() is None
    assert Settings(host="::1").bind_problem() is None
    problem = Settings(host="0.0.0.0").bind_problem()
    assert problem is not None and "without TLS" in problem
    assert Settings(host="192.0.2.10", certfile=Path("c"), keyfile=Path("k")).bind_problem() is None
    assert "trusted-proxies" in (Settings(host="0.0.0.0", behind_proxy=True).bind_problem() or "")
    assert Settings(host="0.0.0.0", behind_proxy=True, trusted_proxies=["10.0.0.1"]).bind_problem() is None


def test_put_config_takes_effect_live(server_factory: ServerFactory) -> None:
    srv = server_factory()
    with srv.login() as c:
        r = c.put("/api/v1/config", json={"interval": 0.5, "collectors": {"processes": False}, "top_n": 3})
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == ["collectors", "interval", "top_n"]
        assert srv.sampler.interval == 0.5
        procs = srv.sampler.aggregator.get("processes")
        assert procs is not None and not procs.enabled
        assert procs.top_n == 3  # type: ignore[attr-defined]
        srv.wait_ticks(2, timeout=5)
        snap = c.get("/api/v1/snapshot").json()
        assert snap["interval"] == 0.5
        assert "processes" not in snap["collectors"]
        # The grid really moved to 0.5 s.
        seq0, t0 = srv.sampler.seq, time.monotonic()
        srv.wait_ticks(4, timeout=5)
        assert (time.monotonic() - t0) / (srv.sampler.seq - seq0) == pytest.approx(0.5, abs=0.15)
        view = c.get("/api/v1/config").json()
        assert view["interval"] == 0.5 and view["collectors"]["processes"] is False and view["top_n"] == 3


def test_perf_event_set_change_rebuilds_the_collector(server_factory: ServerFactory) -> None:
    srv = server_factory()
    old = srv.sampler.aggregator.get("perf_events")
    with srv.login() as c:
        r = c.put("/api/v1/config", json={"perf_events": ["cycles", "cache-misses:u"]})
        assert r.status_code == 200, r.text
        new = srv.sampler.aggregator.get("perf_events")
        assert new is not old and old is not None and old.closed  # type: ignore[attr-defined]
        assert new.chosen_events == ["cycles", "cache-misses:u"]  # type: ignore[union-attr]
        srv.wait_ticks(2)
        events = c.get("/api/v1/snapshot").json()["collectors"]["perf_events"]["data"]["events"]
        assert set(events) == {"cycles", "cache-misses:u"}


def test_bad_config_gets_422_per_field_and_changes_nothing(server_factory: ServerFactory) -> None:
    srv = server_factory()
    with srv.login() as c:
        r = c.put("/api/v1/config", json={"interval": 0.01, "top_n": 0, "perf_events": ["bad event!"]})
        assert r.status_code == 422
        fields = {tuple(e["loc"][:2]) for e in r.json()["detail"]}
        assert fields == {("body", "interval"), ("body", "top_n"), ("body", "perf_events")}
        r = c.put("/api/v1/config", json={"interval": 1.0, "collectors": {"nope": True}})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "collectors", "nope"]
        assert "unknown collector" in r.json()["detail"][0]["msg"]
        assert srv.sampler.interval == 0.2  # the valid field was not applied either
        r = c.put("/api/v1/config", json={"perf_events": ["cycles", "bogus-event"]})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "perf_events", "1"]
        assert "unknown event 'bogus-event'" in r.json()["detail"][0]["msg"]
        assert c.put("/api/v1/config", json={"unknown_field": 1}).status_code == 422
        assert (
            c.put(
                "/api/v1/config", content=b"not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
    with srv.login(VIEWER) as c:
        assert c.put("/api/v1/config", json={"interval": 1.0}).status_code == 403


def test_config_persists_across_restarts(server_factory: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "persist"
    srv = server_factory(data_dir=data)
    with srv.login() as c:
        assert (
            c.put(
                "/api/v1/config", json={"interval": 0.7, "collectors": {"cpu": False}, "top_n": 4}
            ).status_code
            == 200
        )
    srv.stop()
    again = server_factory(data_dir=data, sampler=make_sampler())
    assert again.sampler.interval == 0.7
    cpu = again.sampler.aggregator.get("cpu")
    assert cpu is not None and not cpu.enabled
    with again.login() as c:
        assert c.get("/api/v1/config").json()["top_n"] == 4
    assert (data / "config.json").stat().st_mode & 0o777 == 0o600


def test_shutdown_closes_the_collectors(server_factory: ServerFactory) -> None:
    srv = server_factory()
    collectors = srv.sampler.aggregator.collectors()
    srv.stop()
    assert not srv.thread.is_alive()
    assert all(c.closed for c in collectors)  # type: ignore[attr-defined]
    assert not srv.sampler.running
