"""/proc/stat: CPU time per mode, context switches, interrupts, forks, runnable and blocked tasks.

Layout: Documentation/filesystems/proc.rst, "1.7 Miscellaneous kernel statistics in /proc/stat". CPU times
are in USER_HZ ticks. ``guest`` and ``guest_nice`` (since 2.6.24 and 2.6.33) are already included in
``user`` and ``nice``; kernels older than 2.6.11 lack ``steal`` and later fields, which read as 0 here.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpulse.procfs import ParseError, as_text, to_int, to_ints

#: CPU modes in the order of the columns after "cpu"/"cpuN".
CPU_MODES: tuple[str, ...] = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
    "guest",
    "guest_nice",
)


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Ticks spent in each of :data:`CPU_MODES`, in that order."""

    ticks: tuple[int, ...]

    def __getitem__(self, mode: str) -> int:
        return self.ticks[CPU_MODES.index(mode)]

    @property
    def total(self) -> int:
        """All time the CPU existed: guest time is not added again, it is already inside user/nice."""
        return sum(self.ticks[:8])


@dataclass(frozen=True, slots=True)
class ProcStat:
    total: CpuTimes
    per_cpu: dict[int, CpuTimes]
    context_switches: int | None
    interrupts: int | None
    softirqs: int | None
    forks: int | None
    procs_running: int | None
    procs_blocked: int | None
    boot_time: int | None


def _cpu_times(fields: list[str], what: str) -> CpuTimes:
    if len(fields) < 4:
        raise ParseError(f"{what}: at least user, nice, system and idle are needed")
    vals = to_ints(fields[:10], what)
    if any(v < 0 for v in vals):
        raise ParseError(f"{what}: negative CPU time")
    return CpuTimes(tuple(vals + [0] * (10 - len(vals))))


def parse_stat(data: bytes | str) -> ProcStat:
    text = as_text(data, "/proc/stat")
    total: CpuTimes | None = None
    per_cpu: dict[int, CpuTimes] = {}
    scalars: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "cpu":
            total = _cpu_times(parts[1:], "/proc/stat cpu")
        elif key.startswith("cpu"):
            cpu = to_int(key[3:], "/proc/stat cpu number")
            if cpu < 0:
                raise ParseError(f"/proc/stat: bad CPU number {key!r}")
            per_cpu[cpu] = _cpu_times(parts[1:], f"/proc/stat {key}")
        elif key in ("ctxt", "btime", "processes", "procs_running", "procs_blocked", "intr", "softirq"):
            # intr and softirq: the first number is the total, the per-source breakdown follows.
            if len(parts) < 2:
                raise ParseError(f"/proc/stat: {key} has no value")
            scalars[key] = to_int(parts[1], f"/proc/stat {key}")
    if total is None:
        raise ParseError("/proc/stat: no aggregate 'cpu' line")
    return ProcStat(
        total=total,
        per_cpu=per_cpu,
        context_switches=scalars.get("ctxt"),
        interrupts=scalars.get("intr"),
        softirqs=scalars.get("softirq"),
        forks=scalars.get("processes"),
        procs_running=scalars.get("procs_running"),
        procs_blocked=scalars.get("procs_blocked"),
        boot_time=scalars.get("btime"),
    )
