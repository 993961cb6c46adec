"""What every history store offers, and the values that cross its boundary."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from perfpulse.storage.tiers import Retention


class StoreError(Exception):
    """The history database cannot be used (bad URL, newer schema, unreachable at startup)."""


class QueryError(ValueError):
    """A history query the store refuses to answer as asked; the message says what to change."""


class UnknownSeries(QueryError):
    def __init__(self, host: str, keys: Sequence[str]) -> None:
        self.host = host
        self.keys = list(keys)
        shown = ", ".join(self.keys[:5]) + (" ..." if len(self.keys) > 5 else "")
        super().__init__(f"unknown series on host {host!r}: {shown}; GET /api/v1/history/series lists them")


@dataclass(frozen=True, slots=True)
class Tick:
    """One tick's samples for one host: ``ts_ms`` wall-clock milliseconds, ``samples`` (series key, value).

    ``units`` optionally maps a metric name to its catalogue unit, kept with new series for pickers.
    """

    host: str
    ts_ms: int
    samples: Sequence[tuple[str, float]]
    units: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    id: int
    host: str
    key: str
    name: str
    unit: str | None


@dataclass(slots=True)
class Bucket:
    """Aggregates of one bucket: ``start`` ms, min, sum, max, count. ``count == 0`` is a gap."""

    start: int
    mn: float
    sm: float
    mx: float
    cnt: int


@dataclass(slots=True)
class StoreStats:
    written_ticks: int = 0
    written_samples: int = 0
    dropped_samples: int = 0
    dropped_out_of_order_ticks: int = 0
    pending_samples: int = 0
    pending_ticks: int = 0
    buffer_capacity_samples: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    healthy: bool = True
    retention_deleted_rows: int = 0

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in _STATS_FIELDS}


_STATS_FIELDS = tuple(StoreStats.__dataclass_fields__)


@runtime_checkable
class Store(Protocol):
    """A history database. Methods are blocking: call them from a worker thread, never the event loop.

    ``write()`` is for the writer thread and bulk loads; the Sampler reaches a store through
    :class:`perfpulse.storage.writer.StoreWriter`, which batches, buffers and retries.
    """

    host: str
    retention: Retention
    dialect: str

    def write(self, ticks: Sequence[Tick]) -> int:
        """Write ticks (ascending time per host) in one transaction; returns how many were accepted."""
        ...

    def run_retention(self, now_ms: int, budget_rows: int = 20_000) -> int:
        """Delete at most ``budget_rows`` expired rows; returns how many went."""
        ...

    def maintenance(self) -> None:
        """Periodic upkeep (SQLite: WAL checkpoint)."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failed write may succeed later (database locked or down, disk full)."""
        ...

    def list_series(self, host: str | None = None) -> list[SeriesInfo]: ...

    def hosts(self) -> list[str]: ...

    def resolve(self, host: str, keys: Sequence[str]) -> list[SeriesInfo]:
        """The series for ``keys`` on ``host``, in order; raises :class:`UnknownSeries`."""
        ...

    def buckets(
        self, series: SeriesInfo, tier: str, start_ms: int, end_ms: int, step_ms: int, *, anchor_ms: int = 0
    ) -> list[Bucket]:
        """Non-empty buckets ``[anchor + k*step, anchor + (k+1)*step)`` over [start, end) from ``tier``
        (and, for the part the tier does not cover yet, from finer tiers). ``anchor`` must be a multiple
        of the tier's period and ``step`` a multiple of it, so that no rollup row straddles buckets."""
        ...

    def iter_raw(
        self, series: SeriesInfo, start_ms: int, end_ms: int
    ) -> Iterator[tuple[list[int], list[float]]]:
        """Raw samples over [start, end) in time order, a piece at a time (bounded memory)."""
        ...

    def iter_rollups(
        self, series: SeriesInfo, tier: str, start_ms: int, end_ms: int
    ) -> Iterator[list[tuple[int, float, float, float, int, float]]]:
        """Rollup rows (ts, min, max, sum, count, last) over [start, end), a page at a time."""
        ...

    def size_bytes(self) -> dict[str, int]:
        """Bytes on disk per table (where the database can tell)."""
        ...

    def close(self) -> None: ...
