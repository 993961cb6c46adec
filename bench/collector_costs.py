"""Cost per tick of the processes, gpu, energy and memory_bandwidth collectors, one at a time.

Each collector's ``collect_sync()`` runs ``--ticks`` times (after 3 warm-up ticks) in this thread; the table
gives the median wall time and the mean CPU time (``time.thread_time``) per tick. Rows:

- this machine's real /proc and /sys (on a VM without RAPL, uncore PMUs or an NVIDIA driver the energy,
  gpu and DRAM rows are the cost of the unavailable path, which is what such a machine pays);
- the ``large`` fixture machine (tests/fixtures/machines/large/t0: 8 IMC channels on two sockets, RAPL
  ``power`` PMU) with the perf syscalls answered by the test suite's fake kernel: the Python-side cost of
  reading and scaling 16 IMC and 10 RAPL counters; a real kernel adds one read() per group per CPU.

    .venv/bin/python -m bench.collector_costs [--ticks 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfpulse.collectors.base import Roots
from perfpulse.collectors.energy import EnergyCollector
from perfpulse.collectors.gpu import GpuCollector
from perfpulse.collectors.memory_bandwidth import MemoryBandwidthCollector
from perfpulse.collectors.processes import ProcessesCollector

ROOT = Path(__file__).resolve().parents[1]


def measure(func: Callable[[], Any], ticks: int) -> tuple[float, float]:
    for _ in range(3):
        func()
    walls = []
    c0 = time.thread_time()
    for _ in range(ticks):
        w0 = time.perf_counter()
        func()
        walls.append((time.perf_counter() - w0) * 1000)
    cpu = (time.thread_time() - c0) * 1000 / ticks
    return statistics.median(walls), cpu


def fake_kernel(sys_root: Path) -> Any:
    spec = importlib.util.spec_from_file_location("fakeperf", ROOT / "tests" / "collectors" / "fakeperf.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fakeperf"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    fake = mod.FakeSyscalls(sys_root)
    fake.advance_rates = {
        "cas_count_read": 1e7,
        "cas_count_write": 3e6,
        "energy-pkg": 4e11,
        "energy-ram": 4e10,
    }
    return fake


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=200)
    args, _ = ap.parse_known_args()
    rows: list[tuple[str, str, float, float, str]] = []
    for col in (ProcessesCollector(), GpuCollector(), EnergyCollector(), MemoryBandwidthCollector()):
        first = col.collect_sync()
        state = "unavailable" if first.get("available") is False else "available"
        if col.name == "memory_bandwidth":
            state = f"DRAM {'available' if first['dram'].get('available') else 'unavailable'}, page I/O"
        if col.name == "processes":
            state = f"{first['total']} processes"
        wall, cpu = measure(col.collect_sync, args.ticks)
        rows.append((col.name, "this machine", wall, cpu, state))
        col.close()
    large = ROOT / "tests" / "fixtures" / "machines" / "large" / "t0"
    if (large / "sys").is_dir():
        for cls in (EnergyCollector, MemoryBandwidthCollector):
            fake = fake_kernel(large / "sys")
            col = cls(roots=Roots.under(large), syscalls=fake)

            def tick(col: Any = col, fake: Any = fake) -> None:
                fake.advance(1.0)
                col.collect_sync()

            wall, cpu = measure(tick, args.ticks)
            rows.append(
                (col.name, "large fixture, fake perf syscalls", wall, cpu, f"{len(fake.open_fds)} fds")
            )
            col.close()
    print(f"ticks per row: {args.ticks}")
    print("| collector | source | wall ms/tick (median) | CPU ms/tick (mean) | state |")
    print("| --- | --- | ---: | ---: | --- |")
    for name, source, wall, cpu, state in rows:
        print(f"| {name} | {source} | {wall:.3f} | {cpu:.3f} | {state} |")


if __name__ == "__main__":
    main()
