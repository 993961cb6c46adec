"""History retention as a setting: from the file and environment, changed live through the API (the
running history and its writer thread use it at once), kept across restarts, and refused with one message
per field when it cannot work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from server_support import VIEWER, ServerFactory, make_sampler

from perfpulse.config import load_settings
from perfpulse.storage.tiers import Retention

DAY = 86_400.0
DEFAULT = Retention(raw=2 * DAY, minute=90 * DAY, hour=730 * DAY)


def test_settings_sources_and_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "perfpulse.toml"
    toml.write_text("retention_minute_seconds = 864000\nretention_hour_seconds = 31536000\n")
    monkeypatch.setenv("PERFPULSE_RETENTION_RAW_SECONDS", "7200")
    s = load_settings(toml)
    assert (s.retention_raw_seconds, s.retention_minute_seconds, s.retention_hour_seconds) == (
        7200,
        10 * DAY,
        365 * DAY,
    )
    monkeypatch.delenv("PERFPULSE_RETENTION_RAW_SECONDS")
    d = load_settings()
    assert Retention(d.retention_raw_seconds, d.retention_minute_seconds, d.retention_hour_seconds) == DEFAULT
    with pytest.raises(ValidationError, match="greater than or equal to 3600"):
        load_settings(retention_raw_seconds=60)
    with pytest.raises(ValidationError, match="finite number"):
        load_settings(retention_hour_seconds=float("inf"))
    with pytest.raises(ValidationError, match=r"raw retention \(8640000 s = 100 days\) must not exceed"):
        load_settings(retention_raw_seconds=100 * DAY)
    with pytest.raises(ValidationError, match=r"1-minute retention .* must not exceed the 1-hour tier's"):
        load_settings(retention_minute_seconds=800 * DAY)


def test_settings_reach_the_history_at_start(server_factory: ServerFactory) -> None:
    srv = server_factory(history=True, retention_raw_seconds=10_800, retention_minute_seconds=30 * DAY)
    history = srv.app.state.store
    assert history.retention == Retention(raw=10_800, minute=30 * DAY, hour=730 * DAY)
    with srv.login(VIEWER) as c:
        view = c.get("/api/v1/config").json()
    assert view["retention_raw_seconds"] == 10_800 and view["retention_hour_seconds"] == 730 * DAY
    assert view["limits"]["retention_raw_seconds"] == [3600, 20 * 365 * DAY]


def test_put_retention_takes_effect_live(server_factory: ServerFactory) -> None:
    srv = server_factory(history=True)
    history = srv.app.state.store
    assert history.retention == DEFAULT
    params = {"series": "fake_value_count", "from": "now-5h", "points": 1000}
    with srv.login() as c:
        # 5 hours at 18 s per bucket: the raw tier answers while it keeps two days...
        assert c.get("/api/v1/history", params=params).json()["tier"] == "raw"
        r = c.put("/api/v1/config", json={"retention_raw_seconds": 7200, "retention_minute_seconds": DAY})
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == ["retention_minute_seconds", "retention_raw_seconds"]
        assert r.json()["retention_raw_seconds"] == 7200
        expected = Retention(raw=7200, minute=DAY, hour=730 * DAY)
        assert history.retention == expected
        assert history.writer.store.retention == expected  # what the writer thread's retention runs use
        # ...and the 1-minute tier once raw data lives only two hours.
        assert c.get("/api/v1/history", params=params).json()["tier"] == "1m"
        # the same values again change nothing
        r = c.put("/api/v1/config", json={"retention_raw_seconds": 7200})
        assert r.status_code == 200 and r.json()["changed"] == []


def test_retention_persists_across_restarts(server_factory: ServerFactory, tmp_path: Path) -> None:
    data = tmp_path / "persist"
    # Raw 100 days exceeds the default 1-minute retention: valid only together with the other two, so the
    # restart must re-apply the three as one change.
    wanted = {
        "retention_raw_seconds": 100 * DAY,
        "retention_minute_seconds": 200 * DAY,
        "retention_hour_seconds": 1000 * DAY,
    }
    srv = server_factory(data_dir=data, history=True)
    with srv.login() as c:
        assert c.put("/api/v1/config", json=wanted).status_code == 200
    srv.stop()
    assert {k: v for k, v in json.loads((data / "config.json").read_text()).items() if k in wanted} == wanted
    again = server_factory(data_dir=data, history=True, sampler=make_sampler())
    assert again.app.state.store.retention == Retention(raw=100 * DAY, minute=200 * DAY, hour=1000 * DAY)
    with again.login(VIEWER) as c:
        view = c.get("/api/v1/config").json()
    assert {k: view[k] for k in wanted} == wanted


def test_bad_retention_gets_422_per_field_and_changes_nothing(server_factory: ServerFactory) -> None:
    srv = server_factory(history=True)
    history = srv.app.state.store
    with srv.login() as c:
        r = c.put(
            "/api/v1/config",
            json={"retention_raw_seconds": 60, "retention_hour_seconds": 1e12, "interval": 0.5},
        )
        assert r.status_code == 422
        msgs = {tuple(e["loc"]): e["msg"] for e in r.json()["detail"]}
        assert set(msgs) == {("body", "retention_raw_seconds"), ("body", "retention_hour_seconds")}
        assert "greater than or equal to 3600" in msgs[("body", "retention_raw_seconds")]
        assert "less than or equal to" in msgs[("body", "retention_hour_seconds")]

        # Within bounds but raw outliving the 1-minute tier (90 days by default).
        r = c.put("/api/v1/config", json={"retention_raw_seconds": 100 * DAY, "interval": 0.5})
        assert r.status_code == 422
        [err] = r.json()["detail"]
        assert err["loc"] == ["body", "retention_raw_seconds"]
        assert "must not exceed the 1-minute tier's (7776000 s = 90 days)" in err["msg"]

        # The field sent is the one blamed, even when the rule names the tier it collides with.
        r = c.put("/api/v1/config", json={"retention_minute_seconds": 3600})
        assert r.status_code == 422
        [err] = r.json()["detail"]
        assert err["loc"] == ["body", "retention_minute_seconds"] and "raw retention" in err["msg"]
        r = c.put("/api/v1/config", json={"retention_hour_seconds": DAY})
        assert r.status_code == 422
        [err] = r.json()["detail"]
        assert err["loc"] == ["body", "retention_hour_seconds"] and "1-hour tier's" in err["msg"]

        assert c.put("/api/v1/config", json={"retention_raw_seconds": "two days"}).status_code == 422
        assert history.retention == DEFAULT and srv.sampler.interval == 0.2  # nothing applied
        assert c.get("/api/v1/config").json()["retention_raw_seconds"] == 2 * DAY
    with srv.login(VIEWER) as c:
        assert c.put("/api/v1/config", json={"retention_raw_seconds": 7200}).status_code == 403
    assert history.retention == DEFAULT


def test_command_line_retention_wins_over_saved(tmp_path: Path) -> None:
    """What `perfpulse serve --retention-raw-seconds 7200` does: the flag reaches Settings, the history
    opens with it, and the saved horizons apply around it. The app is built but not served: restoring the
    saved settings happens in create_app."""
    from perfpulse.cli import build_parser
    from perfpulse.commands.serve import LIVE_OPTIONS, _overrides, open_history
    from perfpulse.server.accounts import AccountStore
    from perfpulse.server.app import create_app

    data = tmp_path / "data"
    data.mkdir()
    saved = {"retention_minute_seconds": 200 * DAY, "retention_hour_seconds": 1000 * DAY}
    (data / "config.json").write_text(json.dumps({"retention_raw_seconds": 150 * DAY, **saved}))
    args = build_parser().parse_args(["serve", "--data-dir", str(data), "--retention-raw-seconds", "7200"])
    settings = load_settings(None, **_overrides(args))
    assert settings.retention_raw_seconds == 7200
    history = open_history(settings)
    accounts = AccountStore(settings.db_path)
    try:
        assert history.retention == Retention(raw=7200, minute=90 * DAY, hour=730 * DAY)
        pinned = [k for k in LIVE_OPTIONS if getattr(args, k, None) is not None]
        assert pinned == ["retention_raw_seconds"]
        create_app(settings, sampler=make_sampler(), store=history, accounts=accounts, pinned=pinned)
        assert history.retention == Retention(raw=7200, minute=200 * DAY, hour=1000 * DAY)
    finally:
        history.close()
        accounts.close()
