"""Writes ticks to a SQLite history through the real writer thread until it is killed.

Run by test_crash.py: ``python crash_writer.py DB FIRST_INDEX``. After handing tick i to the writer it
prints i, so the test knows what the daemon had accepted when SIGKILL arrived.
"""

from __future__ import annotations

import sys
import time

from perfpulse.storage import Tick
from perfpulse.storage.sqlite import SQLiteStore
from perfpulse.storage.writer import StoreWriter

T0 = 1_767_225_600_000
SERIES = [f'crash_series_ratio{{n="{n}"}}' for n in range(50)]
# 20 ticks a second: fast enough for a few hundred ticks in the test, slow enough that the writer keeps
# up (closing a chunk of 50 series takes ~15 ms here), as it does at the real 1 Hz.
PACE = 0.05


def main() -> None:
    path, first = sys.argv[1], int(sys.argv[2])
    store = SQLiteStore(path, host="h1", chunk_seconds=60)
    writer = StoreWriter(store, retention_every=3600)
    writer.start()
    print("ready", flush=True)
    i = first
    while True:
        writer.submit(Tick("h1", T0 + i * 1000, [(k, i + n / 1000) for n, k in enumerate(SERIES)]))
        print(i, flush=True)
        i += 1
        time.sleep(PACE)


if __name__ == "__main__":
    main()
