"""`perfpulse export`: recorded history as CSV or JSON, with a progress bar on stderr.

Reads the same database the daemon writes (SQLite through its own read connection, safe while the
daemon runs, or PostgreSQL), through the same bounded, streamed export as ``GET /api/v1/history/export``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from perfpulse.storage import StoreError, open_store
from perfpulse.storage import query as q
from perfpulse.storage.base import QueryError
from perfpulse.storage.sqlite import DB_FILENAME


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "export",
        help="export recorded history as CSV or JSON",
        description="Export recorded history. Times are epoch seconds, ISO 8601 or relative (now-24h).",
    )
    p.add_argument(
        "--data-dir", type=Path, help="the daemon's data directory (default: as `perfpulse serve`)"
    )
    p.add_argument("--database", help="a postgresql:// URL or a SQLite file instead of the data directory")
    p.add_argument("--host", help="the recording host (default this machine's hostname)")
    p.add_argument(
        "--series", action="append", metavar="KEY", help="a series key; repeatable (default every series)"
    )
    p.add_argument("--from", dest="start", default="now-1h", help="start (default now-1h)")
    p.add_argument("--to", dest="end", default="now", help="end (default now)")
    p.add_argument("--tier", choices=["auto", "raw", "1m", "1h"], default="auto", help="resolution")
    p.add_argument("--format", choices=list(q.EXPORT_FORMATS), default="csv")
    p.add_argument("-o", "--output", type=Path, help="file to write (default stdout)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


class ProgressBar:
    """A one-line bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.last = 0.0
        self.started = time.monotonic()
        self.bytes = 0

    def update(self, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        fraction = min(1.0, max(0.0, fraction))
        filled = int(self.width * fraction)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rexport [{bar}] {fraction * 100:5.1f}%  {self.bytes / 1e6:8.2f} MB")
        self.stream.flush()

    def done(self) -> None:
        self.update(1.0, force=True)
        self.stream.write(f"  {time.monotonic() - self.started:.1f} s\n")
        self.stream.flush()


def _data_dir(arg: Path | None) -> Path:
    if arg is not None:
        return arg
    from perfpulse.config import default_data_dir

    env = os.environ.get("PERFPULSE_DATA_DIR")
    return Path(env) if env else default_data_dir()


def run(args: argparse.Namespace) -> int:
    err: TextIO = sys.stderr
    if args.database:
        database = args.database
    else:
        path = _data_dir(args.data_dir) / DB_FILENAME
        if not path.is_file():
            err.write(f"perfpulse export: no history database at {path} (use --data-dir or --database)\n")
            return 2
        database = str(path)
    host = args.host or socket.gethostname()
    now = int(time.time() * 1000)
    try:
        start = q.parse_time(args.start, now, name="--from")
        end = q.parse_time(args.end, now, name="--to")
        store = open_store(database, host=host)
    except (QueryError, StoreError) as exc:
        err.write(f"perfpulse export: {exc}\n")
        return 2
    bar = None if args.quiet else ProgressBar(err)
    out: BinaryIO
    try:
        stream = q.export(
            store,
            host=host,
            keys=args.series,
            start=start,
            end=end,
            tier=args.tier,
            fmt=args.format,
            now_ms=now,
            progress=None if bar is None else bar.update,
        )
        out = args.output.open("wb") if args.output else sys.stdout.buffer
        try:
            for chunk in stream:
                out.write(chunk)
                if bar is not None:
                    bar.bytes += len(chunk)
        finally:
            if args.output:
                out.close()
    except QueryError as exc:
        err.write(f"perfpulse export: {exc}\n")
        return 2
    except OSError as exc:
        err.write(f"perfpulse export: cannot write the export: {exc}\n")
        return 1
    finally:
        store.close()
    if bar is not None:
        bar.done()
    return 0
