"""The history as the daemon sees it: a store, its writer thread, and the Sampler sink.

``create_app(settings, store=History.open(...))`` is all the server needs: ``History.sink`` is fed every
tick, ``History.close`` runs at shutdown, and the routes reach the query side through ``History.store``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from perfpulse.model import Snapshot
from perfpulse.storage import open_store
from perfpulse.storage.base import StoreStats
from perfpulse.storage.engine import SqlStore
from perfpulse.storage.tiers import Retention
from perfpulse.storage.writer import Catalogue, StoreWriter


def _registry_catalogue() -> Catalogue:
    from perfpulse.collectors.base import registry

    return {name: cls.catalogue for name, cls in registry().items()}


class History:
    def __init__(
        self,
        store: SqlStore,
        *,
        catalogue: Callable[[], Catalogue] | None = None,
        capacity_samples: int = 2_000_000,
        start: bool = True,
        **writer_options: Any,
    ) -> None:
        self.store = store
        self.writer = StoreWriter(store, capacity_samples=capacity_samples, **writer_options)
        self._catalogue = catalogue
        self._fallback: Catalogue | None = None
        if start:
            self.writer.start()

    @classmethod
    def open(
        cls,
        database: str | None = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        host: str | None = None,
        retention: Retention | None = None,
        **options: Any,
    ) -> History:
        store = open_store(
            database, data_dir=data_dir, host=host or socket.gethostname(), retention=retention
        )
        return cls(store, **options)

    def bind_catalogue(self, catalogue: Callable[[], Catalogue]) -> None:
        """Use the live catalogue (``sampler.catalogue``) rather than the collector classes' defaults."""
        self._catalogue = catalogue

    def _current_catalogue(self) -> Catalogue:
        if self._catalogue is not None:
            return self._catalogue()
        if self._fallback is None:
            self._fallback = _registry_catalogue()
        return self._fallback

    def sink(self, snapshot: Snapshot) -> None:
        """The Sampler sink: hands the tick to the writer thread and returns at once."""
        self.writer.submit((snapshot, self._current_catalogue()))

    @property
    def retention(self) -> Retention:
        return self.store.retention

    def set_retention(self, retention: Retention) -> None:
        """New horizons for every tier, in effect at once: queries choose tiers by them from the next
        request, and the writer thread's next retention run deletes by them (one attribute swap of a frozen
        value, so a run in progress sees either the old or the new horizons for each tier it visits)."""
        self.store.retention = retention

    @property
    def stats(self) -> StoreStats:
        return self.writer.stats

    def prometheus_text(self) -> bytes:
        """``perfpulse_store_*`` counters (dropped, written, pending samples) for /metrics."""
        return self.writer.prometheus_text()

    def close(self) -> None:
        """Flush what is buffered (within a few seconds) and close the database."""
        self.writer.stop()
        self.store.close()
