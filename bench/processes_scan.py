"""Cost of one processes tick with 2,000+ processes: perfpulse's scan vs a psutil-based scan.

Spawns N sleeping processes (default 2000), then times ticks of ``ProcessesCollector.collect_sync()`` and,
in the same run, the psutil loop a psutil-based collector would run for the same fields
(``process_iter`` with name, status, cpu_times, memory_info, num_threads). Prints milliseconds of wall
and CPU time per tick (median) and the ratio.

    .venv/bin/python -m bench.processes_scan [--processes 2000] [--ticks 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import time
from collections.abc import Callable

import psutil

from perfpulse.collectors.processes import ProcessesCollector


def spawn(n: int) -> list[int]:
    pids = []
    for _ in range(n):
        pids.append(os.posix_spawn("/bin/sleep", ["sleep", "600"], os.environ))
    return pids


def measure(func: Callable[[], object], ticks: int) -> tuple[float, float]:
    func()  # warm-up: first sight of every process
    walls, cpus = [], []
    for _ in range(ticks):
        w0, c0 = time.perf_counter(), time.process_time()
        func()
        cpus.append((time.process_time() - c0) * 1000)
        walls.append((time.perf_counter() - w0) * 1000)
        time.sleep(0.05)
    return statistics.median(walls), statistics.median(cpus)


def psutil_tick() -> int:
    attrs = ["name", "status", "cpu_times", "memory_info", "num_threads"]
    n = 0
    for p in psutil.process_iter(attrs):
        n += p.info["num_threads"] or 0
    return n


def floor_tick() -> int:
    """Only what the kernel must do: open, read and close every /proc/<pid>/stat, nothing parsed."""
    n = 0
    with os.scandir("/proc") as it:
        for entry in it:
            if entry.name.isdigit():
                try:
                    fd = os.open(f"/proc/{entry.name}/stat", os.O_RDONLY)
                except OSError:
                    continue
                try:
                    n += len(os.read(fd, 4096))
                except OSError:
                    pass
                finally:
                    os.close(fd)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=2000)
    ap.add_argument("--ticks", type=int, default=20)
    args, _ = ap.parse_known_args()
    pids = spawn(args.processes)
    try:
        time.sleep(1.0)
        col = ProcessesCollector()
        total = col.collect_sync()["total"]
        ours = measure(col.collect_sync, args.ticks)
        peer = measure(psutil_tick, args.ticks)
        floor = measure(floor_tick, args.ticks)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for pid in pids:
            os.waitpid(pid, 0)
    print(f"processes present: {total}, ticks: {args.ticks}, psutil {psutil.__version__}")
    print("| scan | wall ms/tick | CPU ms/tick |")
    print("| --- | ---: | ---: |")
    print(f"| perfpulse ProcessesCollector | {ours[0]:.1f} | {ours[1]:.1f} |")
    print(f"| psutil.process_iter (same fields) | {peer[0]:.1f} | {peer[1]:.1f} |")
    print(f"| ratio perfpulse / psutil | {ours[0] / peer[0]:.2f} | {ours[1] / peer[1]:.2f} |")
    print(f"| floor: open+read+close of every stat file, no parsing | {floor[0]:.1f} | {floor[1]:.1f} |")


if __name__ == "__main__":
    main()
