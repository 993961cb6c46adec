"""The embedded history store: one SQLite file in the data directory.

WAL lets the dashboard read while the writer writes; ``synchronous=NORMAL`` in WAL mode makes a commit
durable against a crash of the process (kill -9) without an fsync per tick (a power loss may lose the
last commits, never corrupt the file). The server keeps its ``auth_`` tables in the same file; the history
uses only ``hist_`` tables and its own connections.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from perfpulse.storage.base import StoreError
from perfpulse.storage.engine import Conn, Row, SqlStore
from perfpulse.storage.tiers import Retention

DB_FILENAME = "perfpulse.db"


class _SqliteConn(Conn):
    def __init__(self, raw: sqlite3.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.raw.execute(sql, tuple(params)).fetchall()

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.raw.execute(sql, tuple(params)).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.raw.executemany(sql, rows)

    def begin(self) -> None:
        # IMMEDIATE takes the write lock now, so a busy database shows up here (after busy_timeout)
        # rather than halfway through a tick.
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


class _ReadConn(_SqliteConn):
    def begin(self) -> None:
        self.raw.execute("BEGIN")


class SQLiteStore(SqlStore):
    dialect = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        host: str,
        retention: Retention | None = None,
        chunk_seconds: int = 600,
        busy_timeout_ms: int = 5_000,
        readers: int = 4,
        clock: Callable[[], float] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        super().__init__(host=host, retention=retention, chunk_seconds=chunk_seconds, **kwargs)
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._pool: queue.LifoQueue[_SqliteConn] = queue.LifoQueue()
        self._readers = readers
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._setup()
        except StoreError:
            self.close()
            raise
        except (OSError, sqlite3.Error) as exc:
            self.close()
            raise StoreError(f"cannot open the history database {self.path}: {exc}") from exc

    @classmethod
    def in_dir(cls, data_dir: str | os.PathLike[str], **kwargs: Any) -> SQLiteStore:
        return cls(Path(data_dir) / DB_FILENAME, **kwargs)

    def _open(self) -> sqlite3.Connection:
        raw = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout_ms / 1000
        )
        raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raw.close()
            raise StoreError(f"{self.path}: cannot switch to WAL journal mode (got {mode!r})")
        raw.execute("PRAGMA synchronous = NORMAL")
        raw.execute("PRAGMA journal_size_limit = 67108864")
        return raw

    def _connect_writer(self) -> Conn:
        return _SqliteConn(self._open())

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Conn]:
        try:
            conn = self._pool.get_nowait()
        except queue.Empty:
            conn = _ReadConn(self._open())
        # One read transaction per query: every statement of it sees the same snapshot.
        try:
            conn.begin()
            yield conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.rollback()
            conn.close()
            raise
        conn.rollback()
        if self._pool.qsize() < self._readers:
            self._pool.put(conn)
        else:
            conn.close()

    def is_transient(self, exc: BaseException) -> bool:
        # locked, busy, full disk, I/O errors, a vanished directory: all may clear up on their own.
        return isinstance(exc, sqlite3.OperationalError | OSError | StoreError)

    def maintenance(self) -> None:
        """A passive checkpoint keeps the WAL short without waiting for readers."""
        with self._write_lock:
            conn = self._writer()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def integrity_check(self) -> str:
        with self._reader() as conn:
            return "; ".join(str(r[0]) for r in conn.execute("PRAGMA integrity_check"))

    def size_bytes(self) -> dict[str, int]:
        with self._reader() as conn:
            try:
                rows = conn.execute(
                    "SELECT name, SUM(pgsize) FROM dbstat"
                    " WHERE name LIKE 'hist%' OR name LIKE 'sqlite_autoindex_hist%' GROUP BY name"
                )
            except sqlite3.OperationalError:  # SQLite built without the dbstat table
                return {"file": self.path.stat().st_size}
        out = {str(n): int(s) for n, s in rows}
        out["file"] = self.path.stat().st_size
        return out

    def close(self) -> None:
        super().close()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
