"""The gpu collector's NVML readings next to ``nvidia-smi``'s, per GPU, in the same second.

Needs an NVIDIA GPU, its driver and ``nvidia-ml-py``. Prints one table per GPU: field, perfpulse value
(converted to nvidia-smi's units), nvidia-smi value, and the difference. Utilisation, power and clocks move
between the two reads; memory, names, UUIDs and the memory total must match exactly.

    .venv/bin/python -m bench.gpu_vs_smi [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time

from perfpulse.collectors.gpu import GpuCollector

#: nvidia-smi --query-gpu field, perfpulse key, factor from perfpulse's unit to nvidia-smi's (nounits).
FIELDS = (
    ("name", "name", None),
    ("uuid", "uuid", None),
    ("utilization.gpu", "utilization_ratio", 100.0),  # %
    ("utilization.memory", "memory_utilization_ratio", 100.0),  # %
    ("memory.used", "memory_used_bytes", 1 / 2**20),  # MiB
    ("memory.total", "memory_total_bytes", 1 / 2**20),  # MiB
    ("power.draw", "power_watts", 1.0),  # W
    ("temperature.gpu", "temperature_celsius", 1.0),  # C
    ("clocks.sm", "sm_clock_hertz", 1e-6),  # MHz
    ("clocks.mem", "memory_clock_hertz", 1e-6),  # MHz
)


def smi(nvidia_smi: str) -> list[list[str]]:
    query = ",".join(f for f, _, _ in FIELDS)
    out = subprocess.run(
        [nvidia_smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [[c.strip() for c in line.split(",")] for line in out.strip().splitlines()]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args, _ = ap.parse_known_args()
    nvidia_smi = shutil.which("nvidia-smi")
    col = GpuCollector(pcie=True)
    reason = col.unavailable_reason()
    if reason is not None or nvidia_smi is None:
        print(f"cannot compare: {reason or 'nvidia-smi is not on PATH'}", file=sys.stderr)
        return 1
    try:
        for i in range(args.repeat):
            t0 = time.perf_counter()
            data = col.collect_sync()
            took = (time.perf_counter() - t0) * 1000
            rows = smi(nvidia_smi)
            print(f"\n### sample {i + 1} (collect_sync {took:.1f} ms, driver {data['driver_version']})")
            for index, smi_row in enumerate(rows):
                gpu = data["gpus"].get(str(index), {})
                print(
                    f"\nGPU {index}\n| field | perfpulse | nvidia-smi | difference |\n| --- | ---: | ---: | ---: |"
                )
                for (field, key, factor), theirs in zip(FIELDS, smi_row, strict=True):
                    ours = gpu.get(key)
                    if factor is None or ours is None:
                        diff = "" if str(ours) == theirs else "DIFFERS"
                        print(f"| {field} | {ours} | {theirs} | {diff} |")
                        continue
                    mine = ours * factor
                    try:
                        delta = f"{mine - float(theirs):+.2f}"
                    except ValueError:  # "[N/A]", "[Not Supported]"
                        delta = "n/a"
                    print(f"| {field} | {mine:.2f} | {theirs} | {delta} |")
                rx, tx = gpu.get("pcie_rx_bytes_per_second"), gpu.get("pcie_tx_bytes_per_second")
                print(
                    f"| pcie rx/tx (no nvidia-smi query field; compare `nvidia-smi dmon -s t`) | {rx} / {tx} | | |"
                )
            time.sleep(1.0)
    finally:
        col.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
