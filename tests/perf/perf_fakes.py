"""A fake ``Syscalls`` that behaves like the kernel's perf_event_open for counting events.

This machine is a VM without a hardware PMU, so grouping limits, multiplexing, hybrid core PMUs, uncore
cpumasks and E2BIG cannot be produced for real; tests that use this fake say so. The fake keeps the parts
of the kernel's behaviour that counting depends on:

- groups: a member's group_fd must be an open leader on the same CPU; a hardware group may hold at most
  ``counters`` events (more gives EINVAL, as x86's validate_group does);
- group reads in the PERF_FORMAT_GROUP|TOTAL_TIME_ENABLED|TOTAL_TIME_RUNNING|ID layout (leader first,
  then members in the order they were opened), single reads in the value/enabled/running/id layout;
- counts and times are whatever the test sets, so scaling and "not counted" can be driven exactly;
- every fd must be closed exactly once (``open_fds`` shows leaks, closing twice raises EBADF).
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from perfpulse.perf import _abi


@dataclass
class FakeEvent:
    fd: int
    id: int
    type: int
    config: int
    config1: int
    cpu: int
    pid: int
    group_fd: int
    flags: int
    disabled: int
    inherit: int
    pinned: int
    exclude_user: int
    exclude_kernel: int
    exclude_hv: int
    enable_on_exec: int
    read_format: int
    size: int
    members: list[int] = field(default_factory=list)
    value: int = 0
    enabled: int = 0
    running: int = 0


Refuse = Callable[[_abi.PerfEventAttr, int, int], "int | None"]


class FakeKernel:
    """Implements the ``Syscalls`` protocol (plain ``read``, no ``readinto``)."""

    def __init__(
        self,
        *,
        counters: int = 4,
        refuse: Refuse | None = None,
        kernel_attr_size: int | None = None,
        fd_limit: int | None = None,
        strict_size: bool = False,
    ) -> None:
        self.strict_size = strict_size
        self.counters = counters
        self.refuse = refuse
        self.kernel_attr_size = kernel_attr_size
        self.fd_limit = fd_limit
        self.events: dict[int, FakeEvent] = {}
        self.all_events: list[FakeEvent] = []
        self.open_calls: list[dict[str, int]] = []
        self.ioctls: list[tuple[int, int, int]] = []
        self.reads: list[tuple[int, int]] = []
        self.closed: list[int] = []
        self._next_fd = 100
        self._next_id = 5000

    # -- Syscalls ------------------------------------------------------------------------------------------
    def perf_event_open(self, attr: _abi.PerfEventAttr, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        self.open_calls.append(
            {"type": attr.type, "config": attr.config, "size": attr.size, "cpu": cpu, "group_fd": group_fd}
        )
        if self.kernel_attr_size is not None and attr.size > self.kernel_attr_size:
            # A kernel that knows a smaller struct: it refuses the size and writes back its own. (Linux
            # does this when the unknown tail is not zero; ``strict_size`` models kernels and emulation
            # layers that refuse any larger size.)
            tail = bytes(attr)[self.kernel_attr_size :]
            if any(tail) or self.strict_size:
                attr.size = self.kernel_attr_size
                raise OSError(errno.E2BIG, "Argument list too long")
        if self.refuse is not None:
            code = self.refuse(attr, pid, cpu)
            if code is not None:
                raise OSError(code, "refused")
        if self.fd_limit is not None and len(self.events) >= self.fd_limit:
            raise OSError(errno.EMFILE, "Too many open files")
        if group_fd != -1:
            leader = self.events.get(group_fd)
            if leader is None:
                raise OSError(errno.EBADF, "bad group fd")
            if leader.cpu != cpu:
                raise OSError(errno.EINVAL, "group on another cpu")
            hw = attr.type != _abi.PERF_TYPE_SOFTWARE
            if hw and 1 + len(leader.members) + 1 > self.counters:
                raise OSError(errno.EINVAL, "group does not fit the counters")
        fd = self._next_fd
        self._next_fd += 1
        ev = FakeEvent(
            fd=fd,
            id=self._next_id,
            type=attr.type,
            config=attr.config,
            config1=attr.config1,
            cpu=cpu,
            pid=pid,
            group_fd=group_fd,
            flags=flags,
            disabled=attr.disabled,
            inherit=attr.inherit,
            pinned=attr.pinned,
            exclude_user=attr.exclude_user,
            exclude_kernel=attr.exclude_kernel,
            exclude_hv=attr.exclude_hv,
            enable_on_exec=attr.enable_on_exec,
            read_format=attr.read_format,
            size=attr.size,
        )
        self._next_id += 7
        self.events[fd] = ev
        self.all_events.append(ev)
        if group_fd != -1:
            self.events[group_fd].members.append(fd)
        return fd

    def read(self, fd: int, size: int) -> bytes:
        self.reads.append((fd, size))
        ev = self.events.get(fd)
        if ev is None:
            raise OSError(errno.EBADF, "bad fd")
        if ev.read_format & _abi.PERF_FORMAT_GROUP:
            leader = ev if ev.group_fd == -1 else self.events[ev.group_fd]
            group = [leader] + [self.events[m] for m in leader.members]
            data = struct.pack("=3Q", len(group), leader.enabled, leader.running)
            for member in group:
                data += struct.pack("=2Q", member.value, member.id)
        else:
            leader = ev if ev.group_fd == -1 else self.events[ev.group_fd]
            data = struct.pack("=4Q", ev.value, leader.enabled, leader.running, ev.id)
        if size < len(data):
            raise OSError(errno.ENOSPC, "buffer too small")
        return data

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        if fd not in self.events:
            raise OSError(errno.EBADF, "bad fd")
        if request == _abi.PERF_EVENT_IOC_ID:
            ctypes.c_uint64.from_address(arg).value = self.events[fd].id
            return 0
        self.ioctls.append((fd, request, arg))
        return 0

    def close(self, fd: int) -> None:
        if fd not in self.events:
            raise OSError(errno.EBADF, "bad fd")
        ev = self.events.pop(fd)
        if ev.group_fd != -1 and ev.group_fd in self.events:
            self.events[ev.group_fd].members.remove(fd)
        self.closed.append(fd)

    # -- test helpers --------------------------------------------------------------------------------------
    @property
    def open_fds(self) -> set[int]:
        return set(self.events)

    def find(self, config: int, cpu: int, type_: int | None = None) -> FakeEvent:
        for ev in self.events.values():
            if ev.config == config and ev.cpu == cpu and (type_ is None or ev.type == type_):
                return ev
        raise KeyError((config, cpu))

    def leaders(self) -> list[FakeEvent]:
        return [ev for ev in self.events.values() if ev.group_fd == -1]

    def set_times(self, leader_fd: int, enabled: int, running: int) -> None:
        self.events[leader_fd].enabled = enabled
        self.events[leader_fd].running = running


class SwappedIdKernel(FakeKernel):
    """Reports group members in reverse order, to prove reads are matched by id, not by position."""

    def read(self, fd: int, size: int) -> bytes:
        data = super().read(fd, size)
        ev = self.events[fd]
        if not ev.read_format & _abi.PERF_FORMAT_GROUP:
            return data
        nr, ena, run = struct.unpack_from("=3Q", data)
        pairs = [struct.unpack_from("=2Q", data, 24 + 16 * i) for i in range(nr)]
        pairs.reverse()
        return struct.pack("=3Q", nr, ena, run) + b"".join(struct.pack("=2Q", *p) for p in pairs)


def attr_bytes(attr: _abi.PerfEventAttr) -> bytes:
    return ctypes.string_at(ctypes.addressof(attr), ctypes.sizeof(attr))
