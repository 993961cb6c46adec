"""Tiered metric history: raw samples for days, 1-minute and 1-hour rollups for months and years.

``open_store()`` gives the embedded SQLite store (the default: ``<data_dir>/perfpulse.db``) or, for a
``postgresql://`` URL, the PostgreSQL store that several daemons can share. The Sampler feeds a store
through :class:`~perfpulse.storage.writer.StoreWriter`; queries live in :mod:`perfpulse.storage.query`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from perfpulse.storage.base import (
    Bucket,
    QueryError,
    SeriesInfo,
    Store,
    StoreError,
    StoreStats,
    Tick,
    UnknownSeries,
)
from perfpulse.storage.engine import SqlStore
from perfpulse.storage.tiers import Retention

__all__ = [
    "Bucket",
    "QueryError",
    "Retention",
    "SeriesInfo",
    "SqlStore",
    "Store",
    "StoreError",
    "StoreStats",
    "Tick",
    "UnknownSeries",
    "open_store",
]


def open_store(
    database: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    host: str | None = None,
    retention: Retention | None = None,
    **options: Any,
) -> SqlStore:
    """The store for ``database``: a ``postgresql://`` URL, a ``sqlite:///path`` URL or a file path;
    None means ``<data_dir>/perfpulse.db``."""
    host = host or socket.gethostname()
    if database and database.startswith(("postgresql://", "postgres://")):
        from perfpulse.storage.postgres import PostgresStore

        return PostgresStore(database, host=host, retention=retention, **options)
    from perfpulse.storage.sqlite import DB_FILENAME, SQLiteStore

    if database:
        path = (
            Path(database.removeprefix("sqlite://")) if database.startswith("sqlite://") else Path(database)
        )
    elif data_dir is not None:
        path = Path(data_dir) / DB_FILENAME
    else:
        raise StoreError("no history database: give a data directory or a database URL")
    return SQLiteStore(path, host=host, retention=retention, **options)
