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
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from perfpulse.collectors.base import BaseCollector
from perfpulse.model import MetricSpec, Snapshot

__all__ = [
    "CONTENT_TYPE",
    "PREFIX",
    "Exposition",
    "RenderCache",
    "SnapshotCollector",
    "metric_families",
    "render",
]

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


#: One family's series: (family name as prometheus-client names it, spec, [(label values, value)]).
_Series = tuple[str, MetricSpec, list[tuple[tuple[str, ...], float]]]

_DURATION = MetricSpec(
    "collector_duration_seconds",
    "seconds",
    "gauge",
    "Seconds the collector took in the latest tick (the time waited, when it missed its deadline).",
    path="*",
    labels=("collector",),
)
_SUCCESS = MetricSpec(
    "collector_success",
    "ratio",
    "gauge",
    "1 when the collector returned fresh data without error in the latest tick, else 0.",
    path="*",
    labels=("collector",),
)


def _series(snapshot: Snapshot, collectors: Collectors) -> list[_Series]:
    """What a Snapshot exposes, family by family: catalogue order, collectors in Snapshot order, then the
    per-collector duration and success. Families without a sample are left out."""
    known = _by_name(collectors)
    families: dict[str, _Series] = {}
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
            if fam is None:
                fam = families[base] = (base, spec, [])
            fam[2].append((values, sample.value))
    out = list(families.values())
    metas = snapshot.meta.items()
    out.append((PREFIX + _DURATION.name, _DURATION, [((c,), m.duration_ms / 1000.0) for c, m in metas]))
    out.append(
        (
            PREFIX + _SUCCESS.name,
            _SUCCESS,
            [((c,), 1.0 if m.error is None and m.available and not m.stale else 0.0) for c, m in metas],
        )
    )
    return out


def metric_families(snapshot: Snapshot, collectors: Collectors) -> Iterator[Metric]:
    """The Snapshot as prometheus-client metric families (for a registry, see :class:`SnapshotCollector`)."""
    for _, spec, rows in _series(snapshot, collectors):
        fam = _family(spec)
        for values, value in rows:
            fam.add_metric(list(values), value)
        yield fam


class Exposition:
    """Writes the text prometheus-client's ``generate_latest`` writes for :func:`metric_families`, byte for
    byte, at a fraction of its cost per scrape.

    Of each line only the value changes from one tick to the next: the HELP and TYPE lines of a family and
    the name and label set of a series are produced once by prometheus-client itself (its
    ``generate_latest`` on a one-sample family, so names, label order and escaping are exactly its own) and
    kept; each scrape then joins the kept prefixes with the values, formatted by prometheus-client's
    ``floatToGoString``. The kept prefixes are forgotten past ``max_series`` distinct series (devices and
    interfaces come and go over months).
    """

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._heads: dict[tuple[str, str, str], str] = {}
        self._prefixes: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], str] = {}

    def render(self, snapshot: Snapshot, collectors: Collectors) -> bytes:
        heads, prefixes, number = self._heads, self._prefixes, _go_float
        if len(prefixes) > self.max_series:
            prefixes.clear()
        out: list[str] = []
        for base, spec, rows in _series(snapshot, collectors):
            head = heads.get((base, spec.kind, spec.description))
            if head is None:
                head = heads[(base, spec.kind, spec.description)] = _head(spec)
            out.append(head)
            labels = spec.labels
            for values, value in rows:
                key = (base, spec.kind, labels, values)
                prefix = prefixes.get(key)
                if prefix is None:
                    prefix = prefixes[key] = _prefix(spec, values)
                out.append(f"{prefix}{number(value)}\n")
        return "".join(out).encode()


class _Families(Collector):
    """Fixed families, for handing to ``generate_latest`` (which takes anything with ``collect()``)."""

    def __init__(self, *families: Metric) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _head(spec: MetricSpec) -> str:
    """The HELP and TYPE lines of a family, as prometheus-client writes them."""
    return generate_latest(_Families(_family(spec))).decode()


def _prefix(spec: MetricSpec, values: tuple[str, ...]) -> str:
    """A series' line up to its value ("name{labels} "), as prometheus-client writes it: the last line of
    a one-sample family (newlines in HELP texts and label values are escaped, so lines split cleanly)."""
    fam = _family(spec)
    fam.add_metric(list(values), 0.0)
    text = generate_latest(_Families(fam)).decode()
    line = text[text.rindex("\n", 0, -1) + 1 :]
    return line[: line.rindex(" ") + 1]


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


_EXPOSITION = Exposition()
#: prometheus-client's value formatting (untyped there).
_go_float = cast("Callable[[float], str]", floatToGoString)


def render(snapshot: Snapshot | None, collectors: Collectors) -> bytes:
    """The text exposition (format 0.0.4) of ``snapshot``; empty before the first tick."""
    if snapshot is None:
        return b""
    return _EXPOSITION.render(snapshot, collectors)


class RenderCache:
    """The exposition of the latest Snapshot, rendered once per tick however many scrapers ask for it
    (an HA pair of Prometheus servers, a federation, a person with curl)."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._body = b""
        self._exposition = Exposition()
        self.renders = 0

    def render(self, snapshot: Snapshot | None, collectors: Collectors) -> bytes:
        if snapshot is None:
            return b""
        if snapshot is not self._snapshot:
            self._body = self._exposition.render(snapshot, collectors)
            self._snapshot = snapshot
            self.renders += 1
        return self._body
