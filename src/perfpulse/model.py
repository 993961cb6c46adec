"""The data model every part of perfpulse shares: the metric catalogue and the Snapshot.

Collectors return free-form nested dicts (what the dashboard shows). The catalogue says, per metric, where
in that dict the numbers live, so the Prometheus exporter, the history store and the UI can all find every
numeric series without knowing any collector. A ``MetricSpec.path`` is a dotted path into the collector's
data; a ``*`` segment walks every key of a dict at that level and binds it to the next label name in
``labels``. Example: ``MetricSpec("cpu_core_utilization_ratio", ..., path="per_core.*.total",
labels=("cpu",))`` yields one sample per key of ``data["per_core"]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["gauge", "counter"]

#: Units a MetricSpec may use. Base units only (bytes, seconds, joules, hertz); rates end in _per_second.
UNITS = frozenset(
    {
        "ratio",  # 0..1
        "percent",  # 0..100, only where the source itself speaks percent (PSI averages)
        "bytes",
        "bytes_per_second",
        "seconds",
        "seconds_per_second",
        "per_second",
        "count",
        "hertz",
        "celsius",
        "joules",
        "watts",
        "info",
    }
)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One numeric series a collector produces.

    ``name`` follows ``<subsystem>_<what>_<unit>`` in base units; counters end ``_total`` and rates
    ``_per_second``. It is the Prometheus name (with a ``perfpulse_`` prefix), the storage series name and
    the key of the UI label.
    """

    name: str
    unit: str
    kind: Kind
    description: str
    path: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(f"metric name {self.name!r} must match {_NAME_RE.pattern}")
        if self.unit not in UNITS:
            raise ValueError(f"metric {self.name}: unknown unit {self.unit!r}")
        if self.path.split(".").count("*") != len(self.labels):
            raise ValueError(f"metric {self.name}: path {self.path!r} needs one label per '*'")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "kind": self.kind,
            "description": self.description,
            "labels": list(self.labels),
            "path": self.path,
        }


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one series at one tick."""

    name: str
    labels: Labels
    value: float

    @property
    def series_key(self) -> str:
        """Stable identifier of the series, e.g. ``cpu_core_utilization_ratio{cpu="3"}``."""
        return series_key(self.name, self.labels)


def series_key(name: str, labels: Labels) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in labels)
    return f"{name}{{{inner}}}"


def _number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:  # the common case first: exact type checks cost a fraction of isinstance
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value)
    # bool is an int subclass: True/False are meaningful (up/down) and map to 1/0.
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


_PARTS: dict[str, tuple[str, ...]] = {}


def iter_samples(spec: MetricSpec, data: Mapping[str, Any]) -> Iterator[Sample]:
    """Every sample of ``spec`` found in one collector's ``data``; missing or null values are skipped.

    Walks the path one level at a time over a list of (node, label values) rather than recursing through
    nested generators: this runs for every catalogue entry at every tick (history, export), and the flat
    walk is several times cheaper.
    """
    parts = _PARTS.get(spec.path)
    if parts is None:
        parts = _PARTS[spec.path] = tuple(spec.path.split("."))
    level: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    for part in parts:
        deeper: list[tuple[Any, tuple[str, ...]]] = []
        for node, bound in level:
            if type(node) is not dict and not isinstance(node, Mapping):
                continue
            if part == "*":
                deeper.extend((child, (*bound, str(key))) for key, child in node.items())
            elif part in node:
                deeper.append((node[part], bound))
        if not deeper:
            return
        level = deeper
    name, labels = spec.name, spec.labels
    for node, bound in level:
        v = _number(node)
        if v is not None:
            yield Sample(name, tuple(zip(labels, bound, strict=True)) if labels else (), v)


@dataclass(slots=True)
class CollectorMeta:
    """How one collector fared in one tick."""

    timestamp: float
    duration_ms: float
    error: str | None = None
    stale: bool = False
    available: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "timestamp": self.timestamp,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "stale": self.stale,
            "available": self.available,
        }


@dataclass(slots=True)
class Snapshot:
    """Everything perfpulse knows about the machine at one tick of the Sampler."""

    host: str
    wall_time: float  # seconds since the epoch (time.time())
    monotonic: float  # time.monotonic() of the tick; only differences are meaningful
    seq: int
    interval: float
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, CollectorMeta] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "wall_time": self.wall_time,
            "monotonic": self.monotonic,
            "seq": self.seq,
            "interval": self.interval,
            "collectors": {
                name: {"data": self.data.get(name, {}), "meta": m.as_dict()} for name, m in self.meta.items()
            },
        }
