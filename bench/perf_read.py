"""Cost of reading perf counters: perfpulse's group read and collector tick against `perf stat`.

Measured in one run, on the same events (the software events every machine has, so the numbers mean the
same on a VM without a PMU):

- one group read per CPU: ``Counters.read()`` of one system-wide group, divided by the CPU count
  (target: <= 20 us per CPU);
- one ``PerfEventsCollector`` tick (read every group on every CPU, deltas, rates, derived metrics), with
  the same events and with the full default event set;
- the peers: spawning ``perf stat -a`` once per sample (CPU time of the child), and a long-running
  ``perf stat -a -I 1000`` (its CPU time per interval, from /proc/<pid>/stat and, to the nanosecond,
  /proc/<pid>/schedstat).

    .venv/bin/python -m bench.perf_read [--reads 2000] [--ticks 200] [--spawns 20] [--seconds 30]

Needs root (system-wide counting) and /usr/bin/perf.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import time

from perfpulse.collectors.perf_events import PerfEventsCollector
from perfpulse.perf.counting import Counters
from perfpulse.perf.events import resolve_events

EVENTS = ("cpu-clock", "context-switches", "cpu-migrations", "page-faults", "major-faults")


def group_read_us(reads: int) -> tuple[float, float, int]:
    """Median wall and CPU microseconds of one ``Counters.read()`` of one system-wide group, and CPUs."""
    with Counters.system_wide(resolve_events(EVENTS)) as counters:
        counters.enable()
        ncpu = len(counters.read()[EVENTS[0]])
        for _ in range(50):
            counters.read()
        wall, cpu = [], []
        for _ in range(reads):
            w0, c0 = time.perf_counter_ns(), time.process_time_ns()
            counters.read()
            wall.append(time.perf_counter_ns() - w0)
            cpu.append(time.process_time_ns() - c0)
    return statistics.median(wall) / 1e3, statistics.median(cpu) / 1e3, ncpu


def collector_tick_us(ticks: int, events: tuple[str, ...] | None) -> tuple[float, float]:
    """Median wall and CPU microseconds of one PerfEventsCollector tick (after the opening tick)."""

    async def run() -> tuple[float, float]:
        collector = PerfEventsCollector(events=None if events is None else [events], settle=0.0)
        try:
            first = await collector.collect()
            if first.get("available") is False:
                raise RuntimeError(f"collector unavailable: {first['reason']}")
            wall, cpu = [], []
            for _ in range(ticks):
                w0, c0 = time.perf_counter_ns(), time.process_time_ns()
                await collector.collect()
                wall.append(time.perf_counter_ns() - w0)
                cpu.append(time.process_time_ns() - c0)
            return statistics.median(wall) / 1e3, statistics.median(cpu) / 1e3
        finally:
            collector.close()

    return asyncio.run(run())


def perf_spawn_us(perf: str, spawns: int) -> tuple[float, float]:
    """Median wall and CPU (user+sys of the child) microseconds of one `perf stat -a` sample."""
    cmd = [perf, "stat", "-a", "-x,", "-e", ",".join(EVENTS), "--", "true"]
    wall, cpu = [], []
    for _ in range(spawns):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        w0 = time.perf_counter_ns()
        subprocess.run(cmd, check=True, capture_output=True)
        wall.append(time.perf_counter_ns() - w0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e6)
    return statistics.median(wall) / 1e3, statistics.median(cpu)


def _cpu_of(pid: int) -> tuple[float, float]:
    """(seconds from /proc/<pid>/stat utime+stime, seconds from /proc/<pid>/schedstat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as f:
        ns = int(f.read().split()[0])
    return ticks / os.sysconf("SC_CLK_TCK"), ns / 1e9


def perf_interval_us(perf: str, seconds: float) -> tuple[float, float]:
    """CPU microseconds per 1 s interval of a running `perf stat -a -I 1000` (stat, schedstat)."""
    cmd = [perf, "stat", "-a", "-I", "1000", "-x,", "-e", ",".join(EVENTS)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)  # past start-up and the first interval
        stat0, sched0 = _cpu_of(proc.pid)
        time.sleep(seconds)
        stat1, sched1 = _cpu_of(proc.pid)
    finally:
        proc.terminate()
        proc.wait()
    return (stat1 - stat0) / seconds * 1e6, (sched1 - sched0) / seconds * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--spawns", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    perf = shutil.which("perf")
    if os.geteuid() != 0 or perf is None:
        raise SystemExit("bench.perf_read needs root and perf (linux-perf) for the system-wide comparison")

    read_wall, read_cpu, ncpu = group_read_us(args.reads)
    tick_wall, tick_cpu = collector_tick_us(args.ticks, EVENTS)
    full_wall, full_cpu = collector_tick_us(args.ticks, None)
    spawn_wall, spawn_cpu = perf_spawn_us(perf, args.spawns)
    interval_stat, interval_sched = perf_interval_us(perf, args.seconds)

    print(f"events: {', '.join(EVENTS)}; {ncpu} CPUs; medians\n")
    print("| what | wall us | CPU us | CPU vs collector tick |")
    print("|---|---:|---:|---:|")
    rows = [
        (f"group read, per CPU ({ncpu} CPUs / read)", read_wall / ncpu, read_cpu / ncpu),
        ("PerfEventsCollector tick (same events)", tick_wall, tick_cpu),
        ("PerfEventsCollector tick (default event set)", full_wall, full_cpu),
        ("spawn `perf stat -a` per sample", spawn_wall, spawn_cpu),
        ("running `perf stat -a -I 1000`, per interval (/proc/pid/stat)", float("nan"), interval_stat),
        ("running `perf stat -a -I 1000`, per interval (/proc/pid/schedstat)", float("nan"), interval_sched),
    ]
    for name, wall, cpu in rows:
        wall_text = "-" if wall != wall else f"{wall:.1f}"
        print(f"| {name} | {wall_text} | {cpu:.1f} | {cpu / tick_cpu:.2f}x |")
    verdict = "meets" if read_wall / ncpu <= 20 else "MISSES"
    print(f"\ngroup read {read_wall / ncpu:.1f} us per CPU: {verdict} the <= 20 us target")


if __name__ == "__main__":
    main()
