"""PerfEventsCollector: the machine's hardware and software counters, system-wide, in groups.

Every event is opened once per online CPU (pid=-1) through ``perfpulse.perf.counting``; the events whose
ratio means something (instructions/cycles, misses/accesses) share a group, so the kernel schedules them
together and their ratio is exact even when the PMU multiplexes. Values are scaled by enabled/running
(DESIGN.md, "perf scaling"); a counter that did not run in an interval is null, not 0.

The first ``collect()`` opens the counters, reads a baseline, waits ``settle`` seconds and reports that
short window (``"first_tick": true``), so a one-shot caller sees numbers instead of nulls; every later
tick covers the time since the previous one.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from perfpulse.collectors.base import BaseCollector, register, run_blocking, unavailable
from perfpulse.model import Kind, MetricSpec

EventGroups = tuple[tuple[str, ...], ...]

#: The default event set, one tuple per group: ratio pairs share a group (DESIGN.md, "Ratios").
DEFAULT_EVENTS: EventGroups = (
    ("cycles", "instructions"),
    ("branches", "branch-misses"),
    ("cache-references", "cache-misses"),
    ("L1-dcache-loads", "L1-dcache-load-misses"),
    ("LLC-loads", "LLC-load-misses"),
    ("dTLB-loads", "dTLB-load-misses"),
    ("stalled-cycles-frontend", "stalled-cycles-backend"),
    ("cpu-clock", "context-switches", "cpu-migrations", "page-faults", "major-faults"),
)

#: Derived ratio -> (numerator, denominator); computed only when both count in the same group.
RATIOS: dict[str, tuple[str, str]] = {
    "ipc": ("instructions", "cycles"),
    "cpi": ("cycles", "instructions"),
    "branch_miss_ratio": ("branch-misses", "branches"),
    "cache_miss_ratio": ("cache-misses", "cache-references"),
    "l1d_load_miss_ratio": ("L1-dcache-load-misses", "L1-dcache-loads"),
    "llc_load_miss_ratio": ("LLC-load-misses", "LLC-loads"),
    "dtlb_load_miss_ratio": ("dTLB-load-misses", "dTLB-loads"),
}

_SOFTWARE = frozenset(
    {"cpu-clock", "task-clock", "context-switches", "cs", "cpu-migrations", "migrations", "page-faults"}
    | {"faults", "minor-faults", "major-faults", "alignment-faults", "emulation-faults", "dummy"}
)
_PARTNER = {a: b for a, b in RATIOS.values()} | {b: a for a, b in RATIOS.values()}
_PMU_WRAPPED = re.compile(r"^[\w.-]+/([\w.-]+)/(?::?\w*)$")


def base_name(event: str) -> str:
    """``cpu_core/cycles/`` and ``cycles:u`` both mean cycles for the derived metrics."""
    m = _PMU_WRAPPED.match(event)
    name = m.group(1) if m else event
    return name.split(":", 1)[0]


def plan_groups(events: Iterable[str | Sequence[str]]) -> EventGroups:
    """Turn a configured event list into groups.

    A sequence is kept as one group as given. Loose names are grouped so that each known ratio pair shares
    a group and the software events share one; any other name gets a group of its own.
    """
    groups: list[tuple[str, ...]] = []
    loose: list[str] = []
    for item in events:
        if isinstance(item, str):
            loose.append(item)
        elif item:
            groups.append(tuple(item))
    seen: set[str] = set()
    software: list[str] = []
    for name in loose:
        if name in seen:
            continue
        seen.add(name)
        partner = _PARTNER.get(name)
        if name in _SOFTWARE:
            software.append(name)
        elif partner in loose and partner not in seen:
            seen.add(partner)
            groups.append((name, partner))
        else:
            groups.append((name,))
    if software:
        groups.append(tuple(software))
    return tuple(groups)


def derive(
    values: Mapping[str, float | None],
    group_of: Mapping[str, int],
    seconds: float | None = None,
) -> dict[str, float | None]:
    """Derived metrics of one scope (the machine or one CPU) from scaled deltas.

    A ratio needs both events counting in the same group (else it is left out) and is null when the
    denominator is zero or was not counted. ``effective_frequency_hz`` is cycles per cpu-clock second;
    ``cpu_clock_seconds_per_second`` (CPUs busy) needs the interval length.
    """
    by_base: dict[str, list[str]] = {}
    for name in values:
        by_base.setdefault(base_name(name), []).append(name)

    # On a hybrid machine each configured pair is counted as one group per core PMU (cpu_core/cycles/
    # with cpu_core/instructions/, cpu_atom/... with cpu_atom/...), so a ratio takes only pairs from one
    # group and sums numerators and denominators over those pairs: the machine-wide IPC is all
    # instructions over all cycles, exact because each pair was counted together. Per CPU only that CPU's
    # PMU has events, so ``derived_per_cpu`` is the per-PMU ratio.
    def pick(num: str, den: str) -> tuple[float | None, float | None] | None:
        pairs = [
            (n, d)
            for n in by_base.get(num, [])
            for d in by_base.get(den, [])
            if group_of.get(n) is not None and group_of.get(n) == group_of.get(d)
        ]
        if not pairs:
            return None
        nums = [values[n] for n, _ in pairs]
        dens = [values[d] for _, d in pairs]
        if any(v is None for v in nums + dens):
            return (None, None)
        return (sum(v for v in nums if v is not None), sum(v for v in dens if v is not None))

    out: dict[str, float | None] = {}
    for key, (num, den) in RATIOS.items():
        got = pick(num, den)
        if got is None:
            continue
        n, d = got
        out[key] = None if n is None or not d else n / d
    clock = _sum(values, by_base.get("cpu-clock") or by_base.get("task-clock") or [])
    cycles = _sum(values, by_base.get("cycles", []))
    if clock is not ... and cycles is not ...:
        out["effective_frequency_hz"] = None if cycles is None or not clock else cycles / (clock / 1e9)
    if clock is not ... and seconds:
        out["cpu_clock_seconds_per_second"] = None if clock is None else clock / 1e9 / seconds
    return out


def _sum(values: Mapping[str, float | None], names: Sequence[str]) -> Any:
    """Sum of the named values; Ellipsis when none is configured, None when one was not counted."""
    if not names:
        return ...
    got = [values[n] for n in names]
    return None if any(v is None for v in got) else sum(v for v in got if v is not None)


_DERIVED_SPECS = (
    ("ipc", "ipc", "ratio", "Instructions per cycle"),
    ("cpi", "cpi", "ratio", "Cycles per instruction"),
    ("branch_miss", "branch_miss_ratio", "ratio", "Mispredicted branches / branches"),
    ("cache_miss", "cache_miss_ratio", "ratio", "Cache misses / cache references"),
    ("l1d_load_miss", "l1d_load_miss_ratio", "ratio", "L1 data cache load misses / loads"),
    ("llc_load_miss", "llc_load_miss_ratio", "ratio", "Last-level cache load misses / loads"),
    ("dtlb_load_miss", "dtlb_load_miss_ratio", "ratio", "Data TLB load misses / loads"),
    ("effective_frequency", "effective_frequency_hz", "hertz", "Cycles per busy CPU second"),
    ("clock", "cpu_clock_seconds_per_second", "seconds_per_second", "CPU time counted per second"),
)

# (name stem, data key, unit, kind, description) of the per-event series, machine-wide and per CPU.
_EVENT_SPECS: tuple[tuple[str, str, str, Kind, str], ...] = (
    ("count_total", "total", "count", "counter", "Scaled count since the counters were opened"),
    ("delta_count", "delta", "count", "gauge", "Scaled count in the interval"),
    ("rate_per_second", "rate", "per_second", "gauge", "Scaled count per second"),
    ("running_ratio", "running_ratio", "ratio", "gauge", "Time running / time enabled (multiplexing)"),
)

CATALOGUE: tuple[MetricSpec, ...] = (
    MetricSpec("perf_interval_seconds", "seconds", "gauge", "Length of the interval", "interval_seconds"),
    *(
        MetricSpec(f"perf_event_{s}", u, k, d, f"events.*.{key}", ("event",))
        for s, key, u, k, d in _EVENT_SPECS
    ),
    *(
        MetricSpec(
            f"perf_event_cpu_{s}", u, k, f"{d}, one CPU", f"events.*.per_cpu.*.{key}", ("event", "cpu")
        )
        for s, key, u, k, d in _EVENT_SPECS[1:]  # totals are kept machine-wide only
    ),
    *(MetricSpec(f"perf_{stem}_{u}", u, "gauge", d, f"derived.{key}") for stem, key, u, d in _DERIVED_SPECS),
    *(
        MetricSpec(f"perf_cpu_{stem}_{u}", u, "gauge", f"{d}, one CPU", f"derived_per_cpu.*.{key}", ("cpu",))
        for stem, key, u, d in _DERIVED_SPECS
    ),
)

_RETRY_SECONDS = 30.0


def _privileged(proc: Path) -> bool:
    """Root, CAP_PERFMON (38) or CAP_SYS_ADMIN (21) in the effective set, or paranoid <= 0."""
    try:
        for line in (proc / "self" / "status").read_text().splitlines():
            if line.startswith("CapEff:") and int(line.split()[1], 16) & ((1 << 38) | (1 << 21)):
                return True
        return int((proc / "sys" / "kernel" / "perf_event_paranoid").read_text()) <= 0
    except (OSError, ValueError, IndexError):
        return os.geteuid() == 0


def _error_dict(err: Any) -> dict[str, Any]:
    return {"errno": err.errno_name, "reason": err.reason, "hint": err.hint}


@register
class PerfEventsCollector(BaseCollector):
    """System-wide perf counters with per-CPU detail and derived ratios."""

    name = "perf_events"
    catalogue = CATALOGUE
    # Each event that cannot be counted, with why and the fix: on a machine without a PMU, most of a tick.
    sticky = frozenset({"unsupported"})

    def __init__(
        self,
        *,
        events: Iterable[str | Sequence[str]] | None = None,
        settle: float = 0.2,
        syscalls: Any = None,
        sysfs_root: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        configured = None if events is None else [e if isinstance(e, str) else tuple(e) for e in events]
        self.groups: EventGroups = DEFAULT_EVENTS if configured is None else plan_groups(configured)
        #: The event names as configured (None: the default set), for settings views.
        self.chosen_events: list[str] | None = (
            None
            if configured is None
            else [n for e in configured for n in ((e,) if isinstance(e, str) else e)]
        )
        self.settle = settle
        self._syscalls = syscalls
        self._sysfs = sysfs_root if sysfs_root is not None else self.roots.sys
        self._clock = clock
        self._engine: _Engine | None = None
        self._failure: tuple[str, str | None] | None = None
        self._failed_at = 0.0

    def unavailable_reason(self) -> str | None:
        if self._failure is not None:
            return self._failure[0]
        if not (self.roots.proc / "sys" / "kernel" / "perf_event_paranoid").exists():
            return "this kernel has no perf events (no /proc/sys/kernel/perf_event_paranoid)"
        if not _privileged(self.roots.proc):
            return "system-wide counting needs CAP_PERFMON, root, or kernel.perf_event_paranoid <= 0"
        return None

    def hint(self) -> str | None:
        if self._failure is not None and self._failure[1]:
            return self._failure[1]
        return "run `perfpulse check` for what to change; docs/PERMISSIONS.md explains each option"

    def blocking_call(self) -> Callable[[], dict[str, Any]] | None:
        # Opening waits for the counters to settle, so only a tick of an open engine is one blocking call.
        return None if self._engine is None else self._engine.tick

    async def collect(self) -> dict[str, Any]:
        if self._engine is None:
            if self._failure is not None and self._clock() - self._failed_at < _RETRY_SECONDS:
                return unavailable(self._failure[0], self._failure[1])
            opened = await run_blocking(self._open)
            if isinstance(opened, dict):
                return opened
            self._engine = opened
            await asyncio.sleep(self.settle)
        return await run_blocking(self._engine.tick)

    def _open(self) -> _Engine | dict[str, Any]:
        unsupported: dict[str, Any] = {}
        try:
            engine = _Engine(self.groups, self._syscalls, self._sysfs, self._clock)
        except OSError as exc:  # UnsupportedArch, or a syscall layer that cannot load
            failure = (getattr(exc, "reason", None) or str(exc), self.hint())
        else:
            if engine.counters:
                self._failure = None
                return engine
            failure, unsupported = engine.common_failure(), engine.unsupported
        self._failure, self._failed_at = failure, self._clock()
        return unavailable(failure[0], failure[1], unsupported=unsupported)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


class _Engine:
    """The open counters of one event set (one ``Counters``, our groups as explicit groups)."""

    def __init__(self, groups: EventGroups, syscalls: Any, sysfs: Path, clock: Callable[[], float]) -> None:
        from perfpulse.perf.counting import Counters, CountingError
        from perfpulse.perf.events import EventSyntaxError, UnknownEventError, resolve_events
        from perfpulse.perf.pmu import discover_pmus

        self.clock = clock
        self.unsupported: dict[str, dict[str, Any]] = {}
        self.counters: list[Any] = []
        self.group_of: dict[str, int] = {}
        self.totals: dict[str, float] = {}
        pmus = discover_pmus(sysfs)
        planned: list[list[Any]] = []
        for group in groups:
            specs = []
            for name in group:
                try:
                    specs.extend(resolve_events([name], pmus))
                except (UnknownEventError, EventSyntaxError) as exc:
                    hint = "use a name `perf list` shows; `perfpulse check` lists what counts here"
                    self.unsupported[name] = {"errno": None, "reason": str(exc), "hint": hint}
            if specs:
                planned.append(specs)
        if not planned:
            return
        try:
            counters = Counters.system_wide(planned, syscalls=syscalls, pmus=pmus, sysfs_root=sysfs)
        except CountingError as exc:
            for err in exc.errors:
                self.unsupported[err.event] = _error_dict(err)
            return
        except ValueError as exc:  # a configured group mixing PMUs (hardware with software, say)
            self.unsupported["*"] = {"errno": None, "reason": str(exc), "hint": "put them in separate groups"}
            return
        self.counters.append(counters)
        for name, err in counters.failed.items():
            self.unsupported[name] = _error_dict(err)
        for spec in counters.events:
            self.group_of[spec.name] = counters.group_of(spec.name)
        self.first = True
        self.then = clock()
        self.previous = [c.read() for c in self.counters]

    def common_failure(self) -> tuple[str, str | None]:
        """The reason nothing could be counted: the one most events share."""
        if not self.unsupported:
            return ("no perf events configured", None)
        reasons = [(e["reason"], e["hint"]) for e in self.unsupported.values()]
        return max(reasons, key=reasons.count)

    def tick(self) -> dict[str, Any]:
        now = self.clock()
        readings = [c.read() for c in self.counters]
        seconds = now - self.then
        events: dict[str, Any] = {}
        totals: dict[str, float | None] = {}
        per_cpu: dict[str, dict[str, float | None]] = {}
        for reading, previous in zip(readings, self.previous, strict=True):
            for name, by_cpu in reading.delta(previous).items():
                total = reading.total(by_cpu)
                totals[name] = total.value
                if total.value is not None:
                    self.totals[name] = self.totals.get(name, 0.0) + total.value
                cpus: dict[str, Any] = {}
                for cpu, scaled in sorted(by_cpu.items()):
                    cpus[str(cpu)] = _series(scaled.value, scaled.ratio, seconds)
                    per_cpu.setdefault(str(cpu), {})[name] = scaled.value
                events[name] = {
                    "group": self.group_of.get(name),
                    **_series(total.value, total.ratio, seconds),
                    "total": self.totals.get(name),
                    "per_cpu": cpus,
                }
        out = {
            "available": True,
            "scope": "system-wide",
            "first_tick": self.first,
            "interval_seconds": seconds,
            "cpus": sorted(int(c) for c in per_cpu),
            "events": events,
            "derived": derive(totals, self.group_of, seconds),
            "derived_per_cpu": {cpu: derive(v, self.group_of, seconds) for cpu, v in per_cpu.items()},
            "unsupported": self.unsupported,
        }
        self.previous, self.then, self.first = readings, now, False
        return out

    def close(self) -> None:
        for counters in self.counters:
            counters.close()
        self.counters = []


def _series(value: float | None, ratio: float | None, seconds: float) -> dict[str, float | None]:
    rate = None if value is None or seconds <= 0 else value / seconds
    return {"delta": value, "rate": rate, "running_ratio": ratio}
