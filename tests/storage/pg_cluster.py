"""Fixtures for the history tests: a real PostgreSQL 15 cluster started for the session.

``PERFPULSE_TEST_PG_DSN`` points the tests at an existing server instead. Otherwise the fixture runs
``initdb`` into a temporary directory owned by the ``postgres`` user and starts it on a free loopback port
(as ``postgres``, via runuser), with its socket in that directory; it is stopped at the end of the session.
Each test gets a database of its own.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import require

PG_BIN = Path(os.environ.get("PERFPULSE_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    """A throwaway cluster this session controls (stop/start are real: the server process goes away)."""

    base: Path
    port: int
    owned: bool
    admin_dsn: str

    def _pg_ctl(self, *args: str) -> None:
        cmd = [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.base / "data"),
            *args,
        ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        self._pg_ctl(
            "-w",
            "-l",
            str(self.base / "log"),
            "-o",
            f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c full_page_writes=off -c synchronous_commit=off",
            "start",
        )

    def dsn(self, dbname: str) -> str:
        return self.admin_dsn.rsplit("/", 1)[0] + "/" + dbname


def _start_cluster() -> PgCluster:
    require(os.geteuid() == 0, "the PostgreSQL fixture needs root to run initdb as the postgres user")
    require(
        (PG_BIN / "initdb").exists(),
        f"PostgreSQL 15 is not installed at {PG_BIN} (apt install postgresql-15)",
    )
    require(shutil.which("runuser"), "runuser (util-linux) is needed to start PostgreSQL as postgres")
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        require(False, "no postgres user (apt install postgresql-15 creates it)")
        raise
    base = Path(tempfile.mkdtemp(prefix="perfpulse-pg-"))
    os.chown(base, pw.pw_uid, pw.pw_gid)
    base.chmod(0o700)
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            str(PG_BIN / "initdb"),
            "-D",
            str(base / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    cluster = PgCluster(base, port, True, f"postgresql://postgres@127.0.0.1:{port}/postgres")
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    external = os.environ.get("PERFPULSE_TEST_PG_DSN")
    if external:
        yield PgCluster(Path(tempfile.gettempdir()), 0, False, external)
        return
    cluster = _start_cluster()
    try:
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> Iterator[str]:
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_cluster.dsn(name)
    deadline = time.monotonic() + 10
    while True:
        try:
            with psycopg.connect(pg_cluster.admin_dsn, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
