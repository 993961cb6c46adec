"""Prometheus text exposition of a Snapshot.

Every series comes from a collector's catalogue (``BaseCollector.samples(data)``), so a new collector is
exported without touching this module. Names get a ``perfpulse_`` prefix; counters are handed to
prometheus-client without their ``_total`` suffix, which it adds back to the sample (the family is
``perfpulse_x``, the series ``perfpulse_x_total``), as the exposition format wants.

Next to the data, every collector in the Snapshot gets ``perfpulse_collector_duration_seconds`` and
``perfpulse_collector_success`` (1 when it returned fresh data without error, else 0: unavailable here,
failed, or stale past its deadline), so a scrape tells a broken source from a quiet one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry

from perfpulse.collectors.base import BaseCollector
from perfpulse.model import MetricSpec, Snapshot

__all__ = ["CONTENT_TYPE", "PREFIX", "RenderCache", "SnapshotCollector", "metric_families", "render"]

log = logging.getLogger("perfpulse.exporters.prometheus")

#: Text exposition format 0.0.4: what every Prometheus understands. (prometheus-client's own "latest" moved
#: to 1.0.0 for UTF-8 names; perfpulse names are plain legacy names, so the 0.0.4 body is identical.)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "perfpulse_"

Collectors = Iterable[BaseCollector] | Mapping[str, BaseCollector]


def _by_name(collectors: Collectors) -> dict[str, BaseCollector]:
    if isinstance(collectors, Mapping):
        return dict(collectors)
    return {c.name: c for c in collectors}


def _family(spec: MetricSpec) -> GaugeMetricFamily | CounterMetricFamily:
    name = PREFIX + spec.name
    labels = list(spec.labels)
    if spec.kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), spec.description, labels=labels)
    return GaugeMetricFamily(name, spec.description, labels=labels)


def _base_name(spec: MetricSpec) -> str:
    """The family name prometheus-client will print (counters lose ``_total``)."""
    name = PREFIX + spec.name
    return name.removesuffix("_total") if spec.kind == "counter" else name


def metric_families(snapshot: Snapshot, collectors: Collectors) -> Iterator[Metric]:
    """The Snapshot as metric families, in catalogue order, collectors in Snapshot order."""
    known = _by_name(collectors)
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
    owner: dict[str, str] = {}
    for cname in snapshot.meta:
        collector = known.get(cname)
        data: Mapping[str, Any] = snapshot.data.get(cname, {})
        if collector is None or not data:
            continue
        # metric name -> (family name, spec, label values already emitted) for the specs this collector owns.
        targets: dict[str, tuple[str, MetricSpec, set[tuple[str, ...]]]] = {}
        for spec in collector.catalogue:
            base = _base_name(spec)
            who = f"{cname}.{spec.name}"
            if owner.setdefault(base, who) != who:
                # Two catalogue entries mapping to one family (a gauge `x` and a counter `x_total`, or two
                # collectors declaring one name) would give an exposition Prometheus rejects.
                log.warning("metric %s of %s clashes with %s; skipped", spec.name, cname, owner[base])
                continue
            targets[spec.name] = (base, spec, set())
        for sample in collector.samples(data):
            target = targets.get(sample.name)
            if target is None:
                continue
            base, spec, seen = target
            values = tuple(v for _, v in sample.labels)
            if values in seen:
                continue  # a duplicate series would make the whole scrape invalid
            seen.add(values)
            fam = families.get(base)
            if fam is None:  # built on its first sample: a family validates its name, and most have none
                fam = families[base] = _family(spec)
            fam.add_metric(list(values), sample.value)

    duration = GaugeMetricFamily(
        PREFIX + "collector_duration_seconds",
        "Seconds the collector took in the latest tick (the time waited, when it missed its deadline).",
        labels=["collector"],
    )
    success = GaugeMetricFamily(
        PREFIX + "collector_success",
        "1 when the collector returned fresh data without error in the latest tick, else 0.",
        labels=["collector"],
    )
    for cname, meta in snapshot.meta.items():
        duration.add_metric([cname], meta.duration_ms / 1000.0)
        ok = meta.error is None and meta.available and not meta.stale
        success.add_metric([cname], 1.0 if ok else 0.0)

    for fam in families.values():
        if fam.samples:
            yield fam
    yield duration
    yield success


class SnapshotCollector(Collector):
    """A prometheus-client Collector over a Snapshot source, for a long-lived registry.

    ``source`` returns the Snapshot to expose (e.g. ``lambda: sampler.latest``); None exposes nothing.
    """

    def __init__(self, source: Callable[[], Snapshot | None], collectors: Collectors) -> None:
        self._source = source
        self._collectors = _by_name(collectors)

    def collect(self) -> Iterator[Metric]:
        snapshot = self._source()
        if snapshot is None:
            return
        yield from metric_families(snapshot, self._collectors)


def render(snapshot: Snapshot | None, collectors: Collectors) -> bytes:
    """The text exposition (format 0.0.4) of ``snapshot``; empty before the first tick."""
    if snapshot is None:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, collectors))
    return generate_latest(registry)


class RenderCache:
    """The exposition of the latest Snapshot, rendered once per tick however many scrapers ask for it
    (an HA pair of Prometheus servers, a federation, a person with curl)."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._body = b""
        self.renders = 0

    def render(self, snapshot: Snapshot | None, collectors: Collectors) -> bytes:
        if snapshot is None:
            return b""
        if snapshot is not self._snapshot:
            self._body = render(snapshot, collectors)
            self._snapshot = snapshot
            self.renders += 1
        return self._body
