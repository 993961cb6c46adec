"""A fake kernel for perf_event_open, for PMUs this machine does not have (RAPL ``power``, uncore IMCs).

``FakeSyscalls`` implements the ``Syscalls`` protocol of ``perfpulse.perf.counting``: it hands out fds,
remembers groups, honours ENABLE/DISABLE/RESET and answers ``read()`` in the layout the attr's
``read_format`` asks for (GROUP or single, with time_enabled/time_running/id), so the real ``Counters``
code runs unchanged on top of it. Counts advance only through ``advance(seconds)``, at per-event rates
(count units per second) set in ``advance_rates`` by event name (the sysfs name, e.g. ``energy-pkg``).
Event identity comes from the fixture sysfs tree: (type, config) is matched against each PMU's named
events, exactly as the kernel would route it.
"""

from __future__ import annotations

import errno
import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path

from perfpulse.perf import _abi
from perfpulse.perf.events import parse_event
from perfpulse.perf.pmu import discover_pmus

_spec = importlib.util.spec_from_file_location(
    "make_large_pmus", Path(__file__).resolve().parents[1] / "fixtures" / "machines" / "make_large_pmus.py"
)
assert _spec is not None and _spec.loader is not None
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)


def write_online(sys: Path, cpus: str) -> None:
    gen.write(sys / "devices/system/cpu/online", cpus + "\n")


def write_power_pmu(sys: Path, cpumask: str, packages: dict[int, int], *, gpu: bool = False) -> None:
    """A ``power`` PMU with the CPUs of ``packages`` online and their ``physical_package_id``."""
    gen.write_power_pmu(sys, cpumask, gpu=gpu)
    write_online(sys, f"0-{max(packages)}")
    for cpu, pkg in packages.items():
        gen.write(sys / f"devices/system/cpu/cpu{cpu}/topology/physical_package_id", f"{pkg}\n")


@dataclass
class FakeFd:
    name: str
    cpu: int
    leader: int  # own fd for a leader
    read_format: int
    ident: int
    enabled: bool
    members: list[int] = field(default_factory=list)
    value: float = 0.0
    time_enabled: int = 0
    time_running: int = 0


class FakeSyscalls:
    def __init__(self, sys_root: Path) -> None:
        self.by_config: dict[tuple[int, int], str] = {}
        self.rescan(sys_root)
        self.open_fds: dict[int, FakeFd] = {}
        self.opened: list[tuple[str, int]] = []  # (event, cpu) of every successful open
        self.advance_rates: dict[str, float] = {}
        self.running_fraction: dict[str, float] = {}  # <1: multiplexed, 0: never scheduled
        self.refuse: dict[str, int] = {}  # event name -> errno to fail its open with
        self._next_fd = 1000
        self._next_id = 1

    def rescan(self, sys_root: Path) -> None:
        """Learn the named events of every PMU in the fixture sysfs (again, after a PMU was added)."""
        pmus = discover_pmus(sys_root)
        for pmu in pmus.values():
            for event in pmu.events:
                try:
                    spec = parse_event(f"{pmu.name}/{event}/", pmus)
                except ValueError:
                    continue
                self.by_config[(spec.type, spec.config)] = event

    # -- Syscalls protocol ----------------------------------------------------------------------------
    def perf_event_open(self, attr: _abi.PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        name = self.by_config.get((attr.type, attr.config))
        if name is None:
            raise OSError(errno.ENOENT, f"no such event type={attr.type} config={attr.config:#x}")
        if name in self.refuse:
            raise OSError(self.refuse[name], f"refused {name}")
        if pid != -1 or cpu < 0:
            raise OSError(errno.EINVAL, "uncore/RAPL events are system-wide only")
        fd = self._next_fd
        self._next_fd += 1
        leader = fd if group_fd < 0 else group_fd
        f = FakeFd(name, cpu, leader, attr.read_format, self._next_id, enabled=not attr.disabled)
        self._next_id += 1
        self.open_fds[fd] = f
        if group_fd >= 0:
            self.open_fds[group_fd].members.append(fd)
        self.opened.append((name, cpu))
        return fd

    def read(self, fd: int, size: int) -> bytes:
        f = self.open_fds.get(fd)
        if f is None:
            raise OSError(errno.EBADF, "bad fd")
        if f.read_format & _abi.PERF_FORMAT_GROUP:
            fds = [fd, *f.members]
            words = [len(fds), f.time_enabled, f.time_running]
            for m in fds:
                words += [int(self.open_fds[m].value), self.open_fds[m].ident]
        else:
            words = [int(f.value), f.time_enabled, f.time_running, f.ident]
        data = struct.pack(f"={len(words)}Q", *words)
        return data[:size]

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        if request == _abi.PERF_EVENT_IOC_ENABLE:
            self.open_fds[fd].enabled = True
        elif request == _abi.PERF_EVENT_IOC_DISABLE:
            self.open_fds[fd].enabled = False
        elif request == _abi.PERF_EVENT_IOC_RESET:
            self.open_fds[fd].value = 0.0
        else:
            raise OSError(errno.ENOTTY, f"unexpected ioctl {request:#x}")
        return 0

    def close(self, fd: int) -> None:
        if self.open_fds.pop(fd, None) is None:
            raise OSError(errno.EBADF, "bad fd")

    # -- the passage of time ---------------------------------------------------------------------------
    def advance(self, seconds: float) -> None:
        ns = int(seconds * 1e9)
        for f in self.open_fds.values():
            leader = self.open_fds.get(f.leader)
            if leader is None or not leader.enabled or not f.enabled:
                continue
            frac = self.running_fraction.get(leader.name, 1.0)  # multiplexing is per group
            f.time_enabled += ns
            f.time_running += int(ns * frac)
            f.value += self.advance_rates.get(f.name, 0.0) * seconds * frac
