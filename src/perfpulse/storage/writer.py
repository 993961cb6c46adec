"""From Sampler ticks to the database: the store sink, its writer thread and its bounded buffer.

The sink itself only hands the Snapshot over (O(1) on the event loop); a dedicated thread turns it into
samples through the collectors' catalogue and writes one transaction per tick, or a batch of ticks when it
is behind. When the database refuses (locked, down, disk full), ticks wait in a buffer bounded in samples
and the thread retries with exponential backoff, writing them in order once it can; when the buffer is
full the oldest tick goes and its samples are counted in ``dropped_samples``
(``perfpulse_store_dropped_samples_total``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice

from perfpulse.model import MetricSpec, Snapshot, iter_samples
from perfpulse.storage.base import Store, StoreStats, Tick

log = logging.getLogger(__name__)

Catalogue = Mapping[str, Sequence[MetricSpec]]


def snapshot_to_tick(snapshot: Snapshot, catalogue: Catalogue, host: str | None = None) -> Tick:
    """Every catalogued numeric sample of a Snapshot, keyed by series key.

    A stale collector repeats its last good data; storing that would draw a flat line where the truth is
    "no data", so stale, failed and unavailable collectors contribute nothing to the tick.
    """
    samples: list[tuple[str, float]] = []
    units: dict[str, str] = {}
    for cname, specs in catalogue.items():
        data = snapshot.data.get(cname)
        meta = snapshot.meta.get(cname)
        if not data or (meta is not None and (meta.stale or meta.error or not meta.available)):
            continue
        for spec in specs:
            units[spec.name] = spec.unit
            samples.extend((s.series_key, s.value) for s in iter_samples(spec, data))
    return Tick(host or snapshot.host, round(snapshot.wall_time * 1000), samples, units)


class StoreWriter:
    """Owns the writer thread of one store. ``start()`` once; ``stop()`` flushes what it can."""

    def __init__(
        self,
        store: Store,
        *,
        capacity_samples: int = 2_000_000,
        max_batch_ticks: int = 200,
        max_handoff: int = 1000,
        retention_every: float = 60.0,
        maintenance_every: float = 60.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if capacity_samples < 1:
            raise ValueError("capacity_samples must be at least 1")
        self.store = store
        self.capacity = capacity_samples
        self.max_batch_ticks = max_batch_ticks
        self.max_handoff = max_handoff
        self.retention_every = retention_every
        self.maintenance_every = maintenance_every
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._clock = clock
        self._wall = wall
        self._cond = threading.Condition()
        self._handoff: collections.deque[Tick | tuple[Snapshot, Catalogue]] = collections.deque()
        self._pending: collections.deque[Tick] = collections.deque()
        self._pending_samples = 0
        self._stats = StoreStats(buffer_capacity_samples=capacity_samples)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._backoff = backoff_initial
        self._next_attempt = 0.0
        self._idle = threading.Event()
        self._idle.set()

    # -- producer side (any thread, the event loop included) -------------------------------------------------
    def submit(self, tick: Tick | tuple[Snapshot, Catalogue]) -> None:
        dropped = None
        with self._cond:
            self._idle.clear()
            self._handoff.append(tick)
            if len(self._handoff) > self.max_handoff:
                # The writer thread is stuck inside one database call (a hung connection): keep the
                # hand-off bounded too, dropping the oldest as the buffer does.
                dropped = self._handoff.popleft()
            self._cond.notify()
        if dropped is not None:
            n = len(dropped.samples if isinstance(dropped, Tick) else snapshot_to_tick(*dropped).samples)
            with self._cond:
                self._stats.dropped_samples += n

    def sink(self, catalogue: Callable[[], Catalogue]) -> Callable[[Snapshot], None]:
        """A Sampler sink: ``sampler.add_sink(writer.sink(sampler.catalogue), name="store")``."""

        def store_sink(snapshot: Snapshot) -> None:
            self.submit((snapshot, catalogue()))

        return store_sink

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the store writer is already started")
        self._thread = threading.Thread(target=self._run, name="perfpulse-store-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Write what is buffered (one attempt if the database is failing), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error(
                    "history writer did not finish within %.1f s; %d samples not written",
                    timeout,
                    self._pending_samples,
                )
            self._thread = None

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until everything submitted so far is written (or dropped); False on timeout."""
        return self._idle.wait(timeout)

    # -- stats -----------------------------------------------------------------------------------------------
    @property
    def stats(self) -> StoreStats:
        with self._cond:
            s = StoreStats(**self._stats.as_dict())  # type: ignore[arg-type]
            s.pending_samples = self._pending_samples
            s.pending_ticks = len(self._pending)
        s.dropped_out_of_order_ticks = getattr(self.store, "dropped_out_of_order", 0)
        s.retention_deleted_rows = getattr(self.store, "retention_deleted", 0)
        return s

    # -- the thread ------------------------------------------------------------------------------------------
    def _take_handoff(self) -> list[Tick | tuple[Snapshot, Catalogue]]:
        with self._cond:
            items = list(self._handoff)
            self._handoff.clear()
        return items

    def _buffer(self, items: list[Tick | tuple[Snapshot, Catalogue]]) -> None:
        for item in items:
            # A Snapshot is stored under the store's host: that is the name queries and pickers use.
            try:
                tick = item if isinstance(item, Tick) else snapshot_to_tick(*item, host=self.store.host)
            except Exception:  # a catalogue that does not fit its data must not end the writer thread
                log.exception("cannot turn a Snapshot into history samples; skipping it")
                continue
            self._pending.append(tick)
            self._pending_samples += len(tick.samples)
            while self._pending_samples > self.capacity and len(self._pending) > 1:
                old = self._pending.popleft()
                self._pending_samples -= len(old.samples)
                with self._cond:
                    self._stats.dropped_samples += len(old.samples)
        if self._pending_samples > self.capacity:  # one tick larger than the whole buffer
            old = self._pending.popleft()
            self._pending_samples -= len(old.samples)
            with self._cond:
                self._stats.dropped_samples += len(old.samples)

    def _write_some(self) -> bool:
        batch = list(islice(self._pending, self.max_batch_ticks))
        try:
            self.store.write(batch)
        except Exception as exc:
            transient = self.store.is_transient(exc)
            now = self._clock()
            with self._cond:
                first = self._stats.healthy
                self._stats.healthy = False
                self._stats.last_error = f"{type(exc).__name__}: {exc}"
                self._stats.last_error_at = self._wall()
            if transient:
                if first:
                    log.error(
                        "history database unavailable (%s); buffering up to %d samples and retrying",
                        exc,
                        self.capacity,
                    )
                self._next_attempt = now + self._backoff
                self._backoff = min(self.backoff_max, self._backoff * 2)
                return False
            # Not something time will fix (a bug, a bad tick): drop the batch rather than retry forever.
            log.exception("history write failed; dropping %d ticks", len(batch))
            self._drop_front(len(batch))
            return False
        n_samples = sum(len(t.samples) for t in batch)
        for _ in batch:
            self._pending.popleft()
        self._pending_samples -= n_samples
        with self._cond:
            if not self._stats.healthy:
                log.warning("history database is back; writing the buffered ticks")
            self._stats.healthy = True
            self._stats.written_ticks += len(batch)
            self._stats.written_samples += n_samples
        self._backoff = self.backoff_initial
        self._next_attempt = 0.0
        return True

    def _drop_front(self, n: int) -> None:
        for _ in range(min(n, len(self._pending))):
            old = self._pending.popleft()
            self._pending_samples -= len(old.samples)
            with self._cond:
                self._stats.dropped_samples += len(old.samples)

    def _periodic(self, now: float, due: dict[str, float]) -> None:
        if now >= due["retention"]:
            due["retention"] = now + self.retention_every
            try:
                self.store.run_retention(int(self._wall() * 1000))
            except Exception as exc:
                log.warning("history retention run failed: %s", exc)
        if now >= due["maintenance"]:
            due["maintenance"] = now + self.maintenance_every
            try:
                self.store.maintenance()
            except Exception as exc:
                log.warning("history maintenance failed: %s", exc)

    def _run(self) -> None:
        now = self._clock()
        due = {"retention": now + self.retention_every, "maintenance": now + self.maintenance_every}
        final_attempt_done = False
        while True:
            self._buffer(self._take_handoff())
            now = self._clock()
            if self._pending and (now >= self._next_attempt or self._stopping):
                ok = self._write_some()
                if self._stopping and not ok:
                    if final_attempt_done:
                        log.error("history writer stopping with %d samples unwritten", self._pending_samples)
                        return
                    final_attempt_done = True
                continue
            if self._stopping:
                if not self._pending and not self._handoff:
                    self._idle.set()
                    return
                continue
            if not self._pending:
                self._periodic(now, due)
            with self._cond:
                if self._handoff or self._stopping:
                    continue
                if not self._pending:
                    self._idle.set()
                wait = min(due.values()) - now
                if self._pending:
                    wait = min(wait, self._next_attempt - now)
                self._cond.wait(max(0.01, wait))

    def prometheus_text(self) -> bytes:
        """The writer's counters in the Prometheus text format, for the daemon's /metrics."""
        lines = []
        for name, help_text, value in self.prometheus_samples():
            kind = "counter" if name.endswith("_total") else "gauge"
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value!r}"]
        return ("\n".join(lines) + "\n").encode()

    def prometheus_samples(self) -> Iterator[tuple[str, str, float]]:
        """(name, help, value) of the writer's counters, for the metrics endpoint."""
        s = self.stats
        yield (
            "perfpulse_store_dropped_samples_total",
            "Samples the history store dropped (buffer overflow).",
            float(s.dropped_samples),
        )
        yield (
            "perfpulse_store_written_samples_total",
            "Samples written to the history store.",
            float(s.written_samples),
        )
        yield (
            "perfpulse_store_pending_samples",
            "Samples waiting for the history database.",
            float(s.pending_samples),
        )
