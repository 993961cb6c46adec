"""perf_event_open through ctypes: counters for the whole machine, a process or a cgroup.

Only the standard library and ctypes are used here, so this package works (and can be imported by an
unprivileged interpreter) wherever Python runs on Linux. The modules, bottom up: ``_abi`` (the kernel
struct and constants), ``pmu`` (sysfs discovery), ``events`` (names to attrs), ``counting`` (groups,
reads, scaling), ``probe`` (why something cannot be counted).
"""

from perfpulse.perf._abi import PerfEventAttr, UnsupportedArch, syscall_number
from perfpulse.perf.counting import (
    Counters,
    CountingError,
    EventError,
    LinuxSyscalls,
    RawCount,
    Reading,
    Scaled,
    Syscalls,
)
from perfpulse.perf.events import EventSpec, EventSyntaxError, UnknownEventError, parse_event, resolve_events
from perfpulse.perf.pmu import Pmu, PmuEvent, discover_pmus, parse_cpulist
from perfpulse.perf.probe import Context, EventResult, ProbeReport, explain, probe

__all__ = [
    "Context",
    "Counters",
    "CountingError",
    "EventError",
    "EventResult",
    "EventSpec",
    "EventSyntaxError",
    "LinuxSyscalls",
    "PerfEventAttr",
    "Pmu",
    "PmuEvent",
    "ProbeReport",
    "RawCount",
    "Reading",
    "Scaled",
    "Syscalls",
    "UnknownEventError",
    "UnsupportedArch",
    "discover_pmus",
    "explain",
    "parse_cpulist",
    "parse_event",
    "probe",
    "resolve_events",
    "syscall_number",
]
