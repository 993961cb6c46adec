"""PMU discovery from sysfs: what the kernel says each performance monitoring unit can do.

Every PMU the kernel registers appears under ``/sys/bus/event_source/devices/<name>/`` (Linux 2.6.39+,
documented in ``Documentation/ABI/testing/sysfs-bus-event_source-devices*``):

- ``type``: the number that goes into ``perf_event_attr.type`` (dynamic for everything but the fixed
  types 0-5, so it must be read, never assumed);
- ``format/<term>``: where a named term lives in the attr, e.g. ``config:0-7`` or ``config:0-7,32-35``
  (AMD splits the event code) or ``config1:0-15``; a value is spread over the ranges low bits first;
- ``events/<name>``: ready-made terms like ``event=0x3c,umask=0x00``, with optional ``<name>.scale``
  (multiply the count by it, e.g. RAPL's 2.3283064365386962890625e-10 J per unit) and ``<name>.unit``;
- ``cpumask``: uncore, RAPL and other socket-wide PMUs: the one CPU per package to open events on
  (opening on every CPU would count the same socket several times);
- ``cpus``: core PMUs of heterogeneous systems (Intel hybrid ``cpu_core``/``cpu_atom`` since 5.13, Arm
  big.LITTLE): the CPUs this PMU's counters exist on.

Everything is read from an injectable root so that tests run against fixture trees that mimic machines this
one is not (a hybrid laptop, a two-socket server with uncore IMCs and RAPL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_WORDS = ("config", "config1", "config2", "config3")

# Names of PMUs that count a CPU core's own events; "armv8_pmuv3_0", "armv8_cortex_a53" etc. on Arm.
_CORE_NAMES = frozenset({"cpu", "cpu_core", "cpu_atom", "cpum_cf"})
_CORE_PREFIXES = ("armv6", "armv7", "armv8", "armv9")


class PmuFormatError(ValueError):
    """A sysfs format, cpulist or term string this module cannot interpret."""


def parse_cpulist(text: str) -> tuple[int, ...]:
    """Parse the kernel's cpulist format (``0-3,8``, ``0``, empty) into sorted, unique CPU numbers.

    ``bitmap_print_to_pagebuf()`` writes this form for ``cpumask``/``cpus``/``online`` files; an empty file
    means no CPU.
    """
    text = text.strip()
    if not text:
        return ()
    cpus: set[int] = set()
    for raw_part in text.split(","):
        part = raw_part.strip()
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s, 10)
            hi = int(hi_s, 10) if sep else lo
        except ValueError:
            raise PmuFormatError(f"bad cpulist entry {part!r} in {text!r}") from None
        if lo < 0 or hi < lo:
            raise PmuFormatError(f"bad cpulist range {part!r} in {text!r}")
        if hi - lo > 1 << 16:
            raise PmuFormatError(f"cpulist range {part!r} is implausibly large")
        cpus.update(range(lo, hi + 1))
    return tuple(sorted(cpus))


def format_cpulist(cpus: Iterable[int]) -> str:
    """The inverse of ``parse_cpulist``: ranges collapsed the way the kernel prints them."""
    out: list[str] = []
    run: list[int] = []
    for c in sorted(set(cpus)):
        if run and c == run[-1] + 1:
            run.append(c)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [c]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


_FORMAT_RE = re.compile(r"^(config[123]?):([0-9]+(?:-[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*)$")


@dataclass(frozen=True, slots=True)
class FormatField:
    """One ``format/<name>`` entry: which attr word and which bit ranges (low bits of a value first)."""

    name: str
    word: str
    ranges: tuple[tuple[int, int], ...]

    @property
    def width(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self.ranges)

    @property
    def max_value(self) -> int:
        return (1 << self.width) - 1

    def encode(self, value: int) -> int:
        """The bits of ``value`` placed into the word; raises ``ValueError`` when it does not fit."""
        if value < 0 or value > self.max_value:
            raise ValueError(
                f"value {value:#x} does not fit term {self.name!r} "
                f"({self.width} bits, max {self.max_value:#x})"
            )
        out = 0
        for lo, hi in self.ranges:
            n = hi - lo + 1
            out |= (value & ((1 << n) - 1)) << lo
            value >>= n
        return out

    def decode(self, word_value: int) -> int:
        """The term's value out of a config word (the inverse of ``encode``)."""
        out = 0
        shift = 0
        for lo, hi in self.ranges:
            n = hi - lo + 1
            out |= ((word_value >> lo) & ((1 << n) - 1)) << shift
            shift += n
        return out


def parse_format(name: str, text: str) -> FormatField:
    """Parse one format file's content, e.g. ``config:0-7,21``."""
    m = _FORMAT_RE.match(text.strip())
    if m is None:
        raise PmuFormatError(f"format {name!r}: cannot parse {text.strip()!r}")
    ranges: list[tuple[int, int]] = []
    for part in m.group(2).split(","):
        lo_s, sep, hi_s = part.partition("-")
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
        if hi < lo or hi > 63:
            raise PmuFormatError(f"format {name!r}: bad bit range {part!r}")
        ranges.append((lo, hi))
    return FormatField(name=name, word=m.group(1), ranges=tuple(ranges))


@dataclass(frozen=True, slots=True)
class PmuEvent:
    """A named event from ``events/<name>``: its terms and how to scale its count."""

    name: str
    terms: str
    scale: float = 1.0
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Pmu:
    name: str
    type: int
    formats: Mapping[str, FormatField] = field(default_factory=dict)
    events: Mapping[str, PmuEvent] = field(default_factory=dict)
    cpumask: tuple[int, ...] | None = None
    cpus: tuple[int, ...] | None = None
    caps: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_core(self) -> bool:
        """Whether this PMU counts a CPU core's own events (cycles, instructions, caches)."""
        return is_core_pmu_name(self.name) or self.cpus is not None

    @property
    def is_uncore(self) -> bool:
        """Socket-wide PMUs (uncore, RAPL ``power``, IMC) publish a cpumask; they have no task context."""
        return self.cpumask is not None and not self.is_core


def is_core_pmu_name(name: str) -> bool:
    return name in _CORE_NAMES or name.startswith(_CORE_PREFIXES)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _read_events(directory: Path) -> dict[str, PmuEvent]:
    try:
        entries = sorted(p.name for p in directory.iterdir())
    except OSError:
        return {}
    names = set(entries)
    events: dict[str, PmuEvent] = {}
    for name in entries:
        if "." in name and name.rsplit(".", 1)[1] in ("scale", "unit", "per-pkg", "snapshot"):
            continue
        terms = _read(directory / name)
        if terms is None:
            continue
        scale = 1.0
        if f"{name}.scale" in names:
            raw = _read(directory / f"{name}.scale")
            try:
                scale = float(raw) if raw is not None else 1.0
            except ValueError:
                scale = 1.0
        unit = _read(directory / f"{name}.unit") if f"{name}.unit" in names else None
        events[name] = PmuEvent(
            name=name, terms=terms.strip(), scale=scale, unit=unit.strip() or None if unit else None
        )
    return events


def _read_formats(directory: Path) -> dict[str, FormatField]:
    formats: dict[str, FormatField] = {}
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return formats
    for entry in entries:
        text = _read(entry)
        if text is None:
            continue
        try:
            formats[entry.name] = parse_format(entry.name, text)
        except PmuFormatError:
            continue  # a format this parser does not know (none exist today) must not hide the PMU
    return formats


def _read_cpus(path: Path) -> tuple[int, ...] | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return parse_cpulist(text)
    except PmuFormatError:
        return None


def read_pmu(directory: Path) -> Pmu | None:
    """One PMU from its sysfs directory, or None when it has no readable ``type``."""
    text = _read(directory / "type")
    if text is None:
        return None
    try:
        pmu_type = int(text.strip())
    except ValueError:
        return None
    caps: dict[str, str] = {}
    caps_dir = directory / "caps"
    if caps_dir.is_dir():
        for entry in sorted(caps_dir.iterdir()):
            value = _read(entry)
            if value is not None:
                caps[entry.name] = value.strip()
    return Pmu(
        name=directory.name,
        type=pmu_type,
        formats=_read_formats(directory / "format"),
        events=_read_events(directory / "events"),
        cpumask=_read_cpus(directory / "cpumask"),
        cpus=_read_cpus(directory / "cpus"),
        caps=caps,
    )


def discover_pmus(sysfs_root: Path = Path("/sys")) -> dict[str, Pmu]:
    """Every PMU under ``<sysfs_root>/bus/event_source/devices``, by name (empty when there is none)."""
    base = Path(sysfs_root) / "bus" / "event_source" / "devices"
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return {}
    pmus: dict[str, Pmu] = {}
    for entry in entries:
        pmu = read_pmu(entry)
        if pmu is not None:
            pmus[pmu.name] = pmu
    return pmus


def core_pmus(pmus: Mapping[str, Pmu]) -> list[Pmu]:
    """The core PMUs, in name order (one on most machines, two or more on hybrid ones)."""
    return [p for p in pmus.values() if p.is_core]


def online_cpus(sysfs_root: Path = Path("/sys")) -> tuple[int, ...]:
    """CPUs that are online now (``devices/system/cpu/online``); falls back to ``os.sched_getaffinity``'s
    view only when the file cannot be read (some containers hide it)."""
    text = _read(Path(sysfs_root) / "devices" / "system" / "cpu" / "online")
    if text is not None:
        try:
            cpus = parse_cpulist(text)
        except PmuFormatError:
            cpus = ()
        if cpus:
            return cpus
    import os

    return tuple(sorted(os.sched_getaffinity(0)))
