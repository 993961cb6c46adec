"""Generated history for the storage tests: deterministic ticks of a few kinds of series."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from perfpulse.storage.base import Tick

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z

KEYS = (
    'cpu_core_utilization_ratio{cpu="0"}',
    'cpu_core_utilization_ratio{cpu="1"}',
    "memory_used_bytes",
    'disk_read_bytes_per_second{device="sda"}',
    "load_average_1m",
    "net_idle_bytes_per_second",
)


def value(key_index: int, i: int, rng: random.Random) -> float:
    """Quantized to multiples of 1/1024 (or integers), so that sums are exact in any order: two engines
    summing the same values in a different order then agree to the last bit."""
    if key_index < 2:
        return round(rng.random() * 1024) / 1024
    if key_index == 2:
        return float(8_000_000_000 + 4096 * ((i * 7) % 5000))
    if key_index == 3:
        return float(rng.choice((0, 0, 0, 4096, 65536, 1_048_576)))
    if key_index == 4:
        return round((1.5 + math.sin(i / 500)) * 1024) / 1024
    return 0.0


def ticks(
    n: int, *, interval_ms: int = 10_000, start: int = T0, host: str = "h1", seed: int = 7, jitter_ms: int = 3
) -> Iterator[Tick]:
    rng = random.Random(seed)
    for i in range(n):
        ts = start + i * interval_ms + rng.randint(0, jitter_ms)
        yield Tick(
            host, ts, [(k, value(j, i, rng)) for j, k in enumerate(KEYS)], {"memory_used_bytes": "bytes"}
        )
