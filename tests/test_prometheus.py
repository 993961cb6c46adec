"""Prometheus exposition: every output is parsed back with prometheus-client's own parser."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfpulse.collectors.aggregator import MetricsAggregator
from perfpulse.exporters.prometheus import CONTENT_TYPE, SnapshotCollector, render
from perfpulse.model import CollectorMeta, MetricSpec, Snapshot
from perfpulse.sampler import Sampler
from perfpulse.testing import FakeClock, FakeCollector

CATALOGUE = (
    MetricSpec("net_rx_bytes_per_second", "bytes_per_second", "gauge", "Received bytes.", "rx.*", ("iface",)),
    MetricSpec("net_rx_packets_total", "count", "counter", "Packets received.", "packets.*", ("iface",)),
    MetricSpec("net_up_info", "info", "gauge", "Link up.", "up.*", ("iface",)),
    MetricSpec("net_tcp_connections_count", "count", "gauge", "TCP connections.", "tcp"),
    MetricSpec("net_state_count", "count", "gauge", "By state.", "states.*.*", ("family", "state")),
)

DATA: dict[str, Any] = {
    "rx": {"eth0": 1250.5, "wlan0": None, 'we"ird\\name\n': 7},
    "packets": {"eth0": 42, "wlan0": 3},
    "up": {"eth0": True, "wlan0": False},
    "tcp": float("nan"),  # not finite: skipped, not exported as NaN
    "states": {"v4": {"ESTABLISHED": 3, "LISTEN": 2}, "v6": {"LISTEN": 1}},
}


def families(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def snapshot_of(*collectors: FakeCollector) -> Snapshot:
    sampler = Sampler(MetricsAggregator(collectors), host="h", clock=FakeClock())
    return asyncio.run(sampler.tick())


def test_catalogue_series_round_trip_through_the_parser() -> None:
    net = FakeCollector("net", data=DATA, catalogue=CATALOGUE)
    text = render(snapshot_of(net), [net])
    fams = families(text)

    rx = fams["perfpulse_net_rx_bytes_per_second"]
    assert rx.type == "gauge" and rx.documentation == "Received bytes."
    got = {s.labels["iface"]: s.value for s in rx.samples}
    assert got == {"eth0": 1250.5, 'we"ird\\name\n': 7.0}  # None skipped; escaping survives the trip

    pk = fams["perfpulse_net_rx_packets"]  # counter family: name without _total...
    assert pk.type == "counter"
    assert {(s.name, s.labels["iface"], s.value) for s in pk.samples} == {
        ("perfpulse_net_rx_packets_total", "eth0", 42.0),  # ...series with it, no _created
        ("perfpulse_net_rx_packets_total", "wlan0", 3.0),
    }
    up = {s.labels["iface"]: s.value for s in fams["perfpulse_net_up_info"].samples}
    assert up == {"eth0": 1.0, "wlan0": 0.0}
    assert "perfpulse_net_tcp_connections_count" not in fams  # NaN only: family with no series omitted
    states = {
        (s.labels["family"], s.labels["state"]): s.value for s in fams["perfpulse_net_state_count"].samples
    }
    assert states == {("v4", "ESTABLISHED"): 3, ("v4", "LISTEN"): 2, ("v6", "LISTEN"): 1}
    assert b"# TYPE perfpulse_net_rx_packets_total counter" in text


def test_collector_duration_and_success() -> None:
    good = FakeCollector("good", data={"v": 1})
    bad = FakeCollector("bad", raises=OSError("read failed"))
    absent = FakeCollector("absent", reason="not here")
    snap = snapshot_of(good, bad, absent)
    snap.meta["good"].duration_ms = 12.5
    snap.meta["stuck"] = CollectorMeta(timestamp=0, duration_ms=2000.0, error="stale", stale=True)
    fams = families(render(snap, [good, bad, absent]))
    success = {s.labels["collector"]: s.value for s in fams["perfpulse_collector_success"].samples}
    assert success == {"good": 1.0, "bad": 0.0, "absent": 0.0, "stuck": 0.0}
    duration = {s.labels["collector"]: s.value for s in fams["perfpulse_collector_duration_seconds"].samples}
    assert duration["good"] == 0.0125 and duration["stuck"] == 2.0
    assert fams["perfpulse_collector_duration_seconds"].type == "gauge"


def test_stale_collector_exports_its_last_data() -> None:
    spec = MetricSpec("slow_value_count", "count", "gauge", "v", "v")
    slow = FakeCollector("slow", data={"v": 5}, catalogue=[spec])
    snap = snapshot_of(slow)
    snap.meta["slow"].stale = True
    fams = families(render(snap, {"slow": slow}))  # collectors may also be given as a mapping
    assert fams["perfpulse_slow_value_count"].samples[0].value == 5
    assert fams["perfpulse_collector_success"].samples[0].value == 0


def test_clashing_names_are_skipped_not_emitted_twice(caplog: pytest.LogCaptureFixture) -> None:
    gauge = MetricSpec("dup_thing", "count", "gauge", "g", "a")
    counter = MetricSpec("dup_thing_total", "count", "counter", "c", "b")
    one = FakeCollector("one", data={"a": 1}, catalogue=[gauge])
    two = FakeCollector("two", data={"b": 2}, catalogue=[counter])
    with caplog.at_level(logging.WARNING, logger="perfpulse.exporters.prometheus"):
        text = render(snapshot_of(one, two), [one, two])
    fams = families(text)  # parses: no duplicate family
    assert fams["perfpulse_dup_thing"].type == "gauge"
    assert [s.value for s in fams["perfpulse_dup_thing"].samples] == [1.0]
    assert "clashes" in caplog.text


def test_duplicate_series_from_colliding_labels_are_dropped() -> None:
    """``{1: ..., "1": ...}`` both stringify to label "1": one series only, or the scrape is invalid."""
    spec = MetricSpec("x_value_count", "count", "gauge", "x", "m.*", ("k",))
    c = FakeCollector("x", data={"m": {1: 10, "1": 20}}, catalogue=[spec])
    fams = families(render(snapshot_of(c), [c]))
    assert len(fams["perfpulse_x_value_count"].samples) == 1


def test_before_the_first_tick_nothing_is_exposed() -> None:
    assert render(None, []) == b""
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_snapshot_collector_follows_the_latest_snapshot() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    spec = MetricSpec("n_value_count", "count", "gauge", "n", "n")
    c = FakeCollector("n", data=lambda k: {"n": k}, catalogue=[spec])
    sampler = Sampler(MetricsAggregator([c]), clock=FakeClock())
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SnapshotCollector(lambda: sampler.latest, [c]))
    assert generate_latest(reg) == b""

    async def two() -> None:
        await sampler.tick()
        await sampler.tick()

    asyncio.run(two())
    fams = families(generate_latest(reg))
    assert fams["perfpulse_n_value_count"].samples[0].value == 2


def test_render_cache_renders_each_tick_once_and_follows_new_ticks() -> None:
    from perfpulse.exporters.prometheus import RenderCache

    spec = MetricSpec("n_value_count", "count", "gauge", "n", "n")
    c = FakeCollector("n", data=lambda k: {"n": k}, catalogue=[spec])
    sampler = Sampler(MetricsAggregator([c]), clock=FakeClock())
    cache = RenderCache()
    assert cache.render(None, [c]) == b"" and cache.renders == 0
    first = asyncio.run(sampler.tick())
    bodies = [cache.render(first, [c]) for _ in range(3)]
    assert cache.renders == 1 and bodies[0] == bodies[2] == render(first, [c])
    second = asyncio.run(sampler.tick())
    assert families(cache.render(second, [c]))["perfpulse_n_value_count"].samples[0].value == 2
    assert cache.renders == 2


def test_exposition_writes_what_prometheus_client_writes_tick_after_tick() -> None:
    """Odd label values (quotes, backslashes, newlines, UTF-8), counters, info gauges and two-label series:
    the kept prefixes plus this tick's values must equal prometheus-client's own text on every tick, also
    after the kept prefixes were dropped for exceeding ``max_series``."""
    from prometheus_client import CollectorRegistry, generate_latest

    from perfpulse.exporters.prometheus import Exposition

    def data(k: int) -> dict[str, Any]:
        return {
            "rx": {"eth0": 1250.5 * k, 'we"ird\\name\n': 7 + k, "wlän0": 1e-9 / k, "big": 1.5e300},
            "packets": {"eth0": 42 * k, "wlan0": 3},
            "up": {"eth0": k % 2 == 0, "wlan0": False},
            "tcp": k,
            "states": {"v4": {"ESTABLISHED": 3, "LISTEN": k}, "v6": {"LISTEN": 1}},
        }

    net = FakeCollector("net", data=data, catalogue=CATALOGUE)
    sampler = Sampler(MetricsAggregator([net]), host="h", clock=FakeClock())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: sampler.latest, [net]))
    kept, small = Exposition(), Exposition(max_series=3)
    for _ in range(4):
        snap = asyncio.run(sampler.tick())
        want = generate_latest(registry)
        assert b'iface="we\\"ird\\\\name\\n"' in want  # the case this test is about is present
        assert kept.render(snap, [net]) == want
        assert small.render(snap, [net]) == want
