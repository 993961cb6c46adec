"""Counters to deltas and rates: the one place perfpulse turns cumulative numbers into per-second values.

Rules (DESIGN.md, "Counters are deltas"):
- time is monotonic: the tick time comes from ``time.monotonic()`` (or an injected clock), never wall time;
- the first sight of a key gives no rate (there is nothing to subtract);
- a decrease is a reset (counter wrapped, device re-created, driver reloaded): no rate for that interval;
- a rate above the key's ``limit`` is treated as a reset as well, so a glitch never shows an absurd spike;
- a key not seen during a tick is forgotten when the tick ends (a vanished device or an exited process):
  when it returns it starts fresh instead of subtracting a stale value;
- a boot-time change (a restored VM, a test fixture swapped under us) forgets every key;
- callers that track processes put the process start time in the key, so a reused PID is a new key.

Usage::

    tracker = CounterTracker()
    with tracker.tick():
        r = tracker.rate(("eth0", "rx_bytes"), 12345)
        if r is not None:
            print(r.per_second)
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    delta: float
    seconds: float

    @property
    def per_second(self) -> float:
        return self.delta / self.seconds


class CounterTracker:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        boot_id: Callable[[], object] | None = None,
    ) -> None:
        self._clock = clock
        self._boot_id = boot_id
        self._boot: object = None
        self._last: dict[Hashable, tuple[float, float]] = {}
        self._seen: set[Hashable] = set()
        self._now = clock()
        self._in_tick = False

    @contextlib.contextmanager
    def tick(self, now: float | None = None) -> Iterator[CounterTracker]:
        self.begin(now)
        try:
            yield self
        finally:
            self.end()

    def begin(self, now: float | None = None) -> None:
        """Start a tick: every rate in it uses this tick's time."""
        self._now = self._clock() if now is None else now
        self._seen = set()
        self._in_tick = True
        if self._boot_id is not None:
            boot = self._boot_id()
            if self._boot is not None and boot != self._boot:
                self._last.clear()
            self._boot = boot

    def end(self) -> None:
        """End a tick: forget the keys that did not appear in it."""
        if self._in_tick and len(self._seen) != len(self._last):
            for key in [k for k in self._last if k not in self._seen]:
                del self._last[key]
        self._in_tick = False

    def rate(self, key: Hashable, value: float, *, limit: float | None = None) -> Rate | None:
        """The change of counter ``key`` since the previous tick, or None on first sight or reset.

        Outside a ``tick()`` each call reads the clock itself. A value that is not a finite number (a
        parser that met garbage) forgets the key rather than poisoning the next rate with NaN.
        """
        now = self._now if self._in_tick else self._clock()
        if not math.isfinite(value):
            self._last.pop(key, None)
            return None
        self._seen.add(key)
        prev = self._last.get(key)
        self._last[key] = (now, value)
        if prev is None:
            return None
        then, before = prev
        seconds = now - then
        delta = value - before
        if seconds <= 0 or delta < 0:
            return None
        if limit is not None and delta / seconds > limit:
            return None
        return Rate(delta, seconds)

    def per_second(self, key: Hashable, value: float, *, limit: float | None = None) -> float | None:
        """``rate(...).per_second`` without building the Rate: collectors call this once per counter per
        tick (every process, every core, every interface), so it is kept to the arithmetic."""
        now = self._now if self._in_tick else self._clock()
        if not math.isfinite(value):
            self._last.pop(key, None)
            return None
        self._seen.add(key)
        last = self._last
        prev = last.get(key)
        last[key] = (now, value)
        if prev is None:
            return None
        seconds = now - prev[0]
        delta = value - prev[1]
        if seconds <= 0 or delta < 0:
            return None
        per_second = delta / seconds
        if limit is not None and per_second > limit:
            return None
        return per_second

    def forget(self, key: Hashable) -> None:
        self._last.pop(key, None)

    def __len__(self) -> int:
        return len(self._last)


#: The live kernel's boot id, and when it was read: every collector's tracker asks for it each tick, and it
#: cannot change while this process runs on that kernel; once a second is plenty.
_LIVE_BOOT_ID: tuple[float, str | None] = (float("-inf"), None)


def read_boot_id(proc_root: str = "/proc") -> str | None:
    """The kernel's boot id (changes at every boot); None where it cannot be read.

    A fixture tree's is read at every call (tests change it); the live /proc's at most once a second.
    """
    global _LIVE_BOOT_ID
    live = proc_root == "/proc"
    if live:
        at, value = _LIVE_BOOT_ID
        now = time.monotonic()
        if now - at < 1.0:
            return value
    try:
        fd = os.open(f"{proc_root}/sys/kernel/random/boot_id", os.O_RDONLY)
        try:
            value = os.read(fd, 64).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
    except OSError:
        value = None
    if live:
        _LIVE_BOOT_ID = (now, value)
    return value
