"""The shared history store: PostgreSQL, for several perfpulse daemons writing one database.

psycopg is imported only when this store is used, so an installation without the ``postgres`` extra still
runs on SQLite. Each daemon writes its own host's series through one connection; readers share a small
pool. When the server goes away, the failed transaction is rolled back, the connection dropped and the
ticks stay in the writer's buffer until a new connection succeeds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from perfpulse.storage.base import StoreError
from perfpulse.storage.engine import Conn, Row, SqlStore
from perfpulse.storage.tiers import Retention


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise StoreError("a postgresql:// database needs psycopg: pip install 'perfpulse[postgres]'") from exc
    return psycopg


def _q(sql: str) -> str:
    # The engine writes ?-placeholders and never a literal '%' or '?'.
    return sql.replace("?", "%s")


def _connect_options(timeout: float) -> dict[str, Any]:
    """libpq options that turn a server that vanished without closing the connection (a partition, a
    power cut) into an error within seconds, instead of a write blocked for the TCP retransmit timeout."""
    t = max(1, int(timeout))
    return {
        "connect_timeout": t,
        "keepalives": 1,
        "keepalives_idle": t,
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": t * 2000,
    }


class _PgConn(Conn):
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._pipe: Any = None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self.raw.execute(_q(sql), tuple(params))
        if self._pipe is not None:
            self._pipe.sync()  # the answer is needed now
        return list(cur.fetchall()) if cur.description else []

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.raw.execute(_q(sql), tuple(params))

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[object]:
        with self.raw.pipeline() as pipe:
            self._pipe = pipe
            try:
                yield pipe
            finally:
                self._pipe = None

    def execute_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        return int(self.raw.execute(_q(sql), tuple(params)).rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(_q(sql), rows)

    def begin(self) -> None:
        return None  # psycopg opens a transaction with the first statement

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    def close(self) -> None:
        self.raw.close()


class PostgresStore(SqlStore):
    dialect = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        host: str,
        retention: Retention | None = None,
        chunk_seconds: int = 600,
        connect_timeout: float = 5.0,
        readers: int = 4,
        clock: Callable[[], float] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {} if clock is None else {"clock": clock}
        super().__init__(host=host, retention=retention, chunk_seconds=chunk_seconds, **kwargs)
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        psycopg = _psycopg()
        try:
            from psycopg_pool import ConnectionPool
        except ImportError as exc:  # pragma: no cover
            raise StoreError(
                "a postgresql:// database needs psycopg_pool: pip install 'perfpulse[postgres]'"
            ) from exc
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=readers,
            open=False,
            timeout=connect_timeout,
            kwargs={"autocommit": True, **_connect_options(connect_timeout)},
            name="perfpulse-history",
            # A restarted server leaves dead connections in the pool; check each before use.
            check=ConnectionPool.check_connection,
        )
        try:
            self._setup()
        except StoreError:
            self.close()
            raise
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"cannot use the PostgreSQL history database: {exc}") from exc
        self._pool.open()

    def _connect_writer(self) -> Conn:
        psycopg = _psycopg()
        raw = psycopg.connect(self.dsn, autocommit=False, **_connect_options(self.connect_timeout))
        raw.execute("SET lock_timeout = '10s'")
        raw.commit()
        return _PgConn(raw)

    def is_transient(self, exc: BaseException) -> bool:
        psycopg = _psycopg()
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError | StoreError)

    def _writer_failed(self, exc: BaseException) -> None:
        psycopg = _psycopg()
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError) and self._wconn is not None:
            with contextlib.suppress(Exception):
                self._wconn.close()
            self._wconn = None

    def _setup(self) -> None:
        conn = self._writer()
        assert isinstance(conn, _PgConn)
        # Two daemons starting at once must not both create the tables.
        conn.raw.execute("SELECT pg_advisory_xact_lock(7270150)")
        super()._setup()

    @contextlib.contextmanager
    def _reader(self) -> Iterator[Conn]:
        from psycopg_pool import PoolTimeout

        psycopg = _psycopg()
        with contextlib.ExitStack() as stack:
            try:
                raw = stack.enter_context(self._pool.connection())
            except PoolTimeout:
                # After an outage the pool reconnects on its own schedule (with backoff); a server that
                # is back already should not wait for it, so try once directly.
                raw = stack.enter_context(
                    psycopg.connect(self.dsn, autocommit=True, **_connect_options(self.connect_timeout))
                )
            with raw.transaction():
                # One snapshot per query: the writer may move a closing chunk from hist_stage to
                # hist_raw between two statements, and the query must see it in one place or the
                # other, not neither.
                raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield _PgConn(raw)

    def size_bytes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._reader() as conn:
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE starts_with(tablename, 'hist_')"
            ):
                out[str(name)] = int(
                    conn.execute("SELECT pg_total_relation_size(?::regclass)", (str(name),))[0][0]
                )
        return out

    def close(self) -> None:
        super().close()
        with contextlib.suppress(Exception):
            self._pool.close()
