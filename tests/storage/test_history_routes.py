"""The history routes on the real app and a real loopback port, with the server's own test harness
(fake collectors feeding a real Sampler and a real SQLite history)."""

from __future__ import annotations

import csv
import importlib.util
import io
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "server_harness", Path(__file__).parent.parent / "server" / "server_support.py"
)
assert _spec is not None and _spec.loader is not None
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)
server_factory = harness.server_factory  # the fixture, reused
VIEWER = harness.VIEWER

H = "/api/v1/history"


def _wait_for_rows(client, timeout: float = 15.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(H, params={"series": "fake_value_count", "from": "now-5m", "points": 1000})
        if r.status_code == 200 and sum(v is not None for v in r.json()["series"][0]["avg"]) >= 3:
            return r.json()
        assert time.monotonic() < deadline, (r.status_code, r.text)
        time.sleep(0.2)


def test_history_routes_end_to_end(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(history=True)
    with srv.login(VIEWER) as c:
        body = _wait_for_rows(c)
        s = body["series"][0]
        assert body["tier"] == "raw" and s["resolution"] == "raw" and s["unit"] == "count"
        values = [v for v in s["avg"] if v is not None]
        assert values == sorted(values)  # the fake counts ticks
        listing = c.get(f"{H}/series").json()
        assert listing["default_host"] == "testhost" and "testhost" in listing["hosts"]
        assert {
            "host": "testhost",
            "key": "fake_value_count",
            "name": "fake_value_count",
            "unit": "count",
        } in listing["series"]
        # several series per call, bucketed
        r = c.get(H, params=[("series", "fake_value_count"), ("series", "fake_value_count"), ("points", "3")])
        assert r.status_code == 200 and len(r.json()["series"]) == 1
        r = c.get(
            f"{H}/compare", params={"series": "fake_value_count", "from": "now-10s", "baseline": "previous"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["mode"] == "previous" and "change_pct" in r.json()["series"][0]["summary"]
        r = c.get(f"{H}/export", params={"series": "fake_value_count", "from": "now-5m", "tier": "raw"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(r.text)))
        assert rows[0] == ["time", "host", "series", "value"] and len(rows) > 2
        r = c.get(f"{H}/export", params={"format": "json", "from": "now-5m", "tier": "raw"})
        assert r.status_code == 200 and r.json()["columns"] == ["time", "host", "series", "value"]
        metrics = c.get("/api/v1/metrics").text
        assert "perfpulse_store_dropped_samples_total 0.0" in metrics
        assert "perfpulse_store_written_samples_total" in metrics


@pytest.mark.parametrize(
    "params",
    [
        {"series": "fake_value_count", "from": "now", "to": "now-1h"},
        {"series": "fake_value_count", "points": "0"},
        {"series": "fake_value_count", "points": str(10**7)},
        {"series": "no_such_series"},
        {},
        {"series": "fake_value_count", "from": "last tuesday"},
        {"series": "fake_value_count", "from": "now-3650d", "tier": "raw", "points": "100000"},
        {"series": "fake_value_count", "tier": "5m"},
        {"series": "nul\x00in-name"},
        {"series": "fake_value_count", "host": "x" * 5000},
    ],
)
def test_bad_queries_get_422_with_a_message(server_factory, params: dict) -> None:  # type: ignore[no-untyped-def]
    srv = _shared(server_factory)
    with srv.login(VIEWER) as c:
        r = c.get(H, params=params)
        assert r.status_code == 422, r.text
        assert r.json()["detail"]


def test_ten_years_auto_is_a_bounded_answer(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = _shared(server_factory)
    with srv.login(VIEWER) as c:
        assert c.get(f"{H}/series", params={"host": "a\x00"}).status_code == 422
        assert c.get(f"{H}/series", params={"host": "elsewhere"}).json()["series"] == []
        r = c.get(H, params={"series": "fake_value_count", "from": "now-3650d", "points": "2000"})
        assert r.status_code == 200 and r.json()["tier"] == "1h"
        assert len(r.json()["series"][0]["t"]) <= 2002
        for params in ({"series": "x", "format": "xml"}, {"from": "now-100y"}):
            assert c.get(f"{H}/export", params=params).status_code == 422
        r = c.get(
            f"{H}/compare",
            params={"series": "fake_value_count", "from": "now-1h", "from2": "now-3h", "to2": "now-1h"},
        )
        assert r.status_code == 422 and "equal length" in r.json()["detail"]


def test_history_needs_a_login_and_a_store(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = _shared(server_factory)
    with srv.client() as anon:
        for path in (H, f"{H}/series", f"{H}/compare", f"{H}/export"):
            assert anon.get(path, params={"series": "fake_value_count"}).status_code == 401
    plain = server_factory(history=False)
    with plain.login(VIEWER) as c:
        r = c.get(H, params={"series": "fake_value_count"})
        assert r.status_code == 503 and "not enabled" in r.json()["detail"]


def _shared(factory):  # type: ignore[no-untyped-def]
    return factory(history=True)
