"""Golden end-to-end test: fixture /proc and /sys trees -> every collector -> Sampler -> JSON and Prometheus.

For each machine under tests/fixtures/machines/ the whole default collector set is built with its roots on
the scenario's ``t0`` tree; one tick; the tree is switched to ``t1`` and a FakeClock moves 1 s; a second
tick. That second Snapshot, rendered as sorted JSON (volatile fields normalised) and as Prometheus text,
must equal tests/golden/<scenario>.json and .prom byte for byte. ``make golden``
(PERFPULSE_REGEN_GOLDEN=1) rewrites them; review the diff before committing it.

What a fixture tree cannot hold is replaced by deterministic fakes, documented here:

- perf_event_open: a fixture has no kernel, so the perf-based collectors (perf_events, energy,
  memory_bandwidth) get ``FixtureKernel``, a fake syscall layer whose counters advance with the FakeClock at
  fixed per-event rates. The PMUs they open are still discovered from the fixture's sysfs.
- statvfs: answered from the scenario's statvfs.json (its filesystems are not on this machine);
- NVML: a binding whose init fails as on a machine without the NVIDIA driver (GPU values themselves are
  compared with nvidia-smi on real hardware, not here);
- user names: uid -> name from a fixed table, not this machine's passwd.
"""

from __future__ import annotations

import asyncio
import difflib
import errno
import json
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from perfpulse.collectors.base import Roots
from perfpulse.exporters.prometheus import render
from perfpulse.model import Snapshot
from perfpulse.perf import _abi
from perfpulse.perf.events import parse_event
from perfpulse.perf.pmu import discover_pmus
from perfpulse.sampler import Sampler, build_default
from perfpulse.testing import FakeClock

MACHINES = Path(__file__).parent / "fixtures" / "machines"
GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = ("captured", "large", "minimal")
REGEN = os.environ.get("PERFPULSE_REGEN_GOLDEN", "") not in ("", "0")
VOLATILE = frozenset({"timestamp", "duration_ms"})


class FixtureKernel:
    """perf_event_open, read, ioctl and close over fake counters (the ``Syscalls`` protocol).

    Every opened event counts at a fixed rate, scaled by a per-CPU factor, while its group leader is
    enabled, in FakeClock time; time_enabled and time_running are the enabled time (no multiplexing).
    Rates are plausible for what the event is: 3 GHz cycles, one second of cpu-clock per second, a 45 W
    package, 3 GB/s of DRAM reads per channel. Named PMU events are recognised through the fixture's
    sysfs, as the kernel would route them; anything unknown counts at a stable rate from a CRC of its
    encoding, so golden values never depend on Python's hash seed.
    """

    # (type, config) of the generic events: include/uapi/linux/perf_event.h.
    HW, SW, CACHE = _abi.PERF_TYPE_HARDWARE, _abi.PERF_TYPE_SOFTWARE, 3
    GENERIC: ClassVar[dict[tuple[int, int], float]] = {
        (HW, 0): 3.0e9,  # cycles
        (HW, 1): 4.5e9,  # instructions
        (HW, 2): 5.0e7,  # cache-references
        (HW, 3): 1.0e7,  # cache-misses
        (HW, 4): 9.0e8,  # branches
        (HW, 5): 9.0e6,  # branch-misses
        (HW, 6): 1.0e8,  # bus-cycles
        (HW, 7): 6.0e8,  # stalled-cycles-frontend
        (HW, 8): 9.0e8,  # stalled-cycles-backend
        (HW, 9): 3.0e9,  # ref-cycles
        (SW, 0): 1.0e9,  # cpu-clock, ns per second
        (SW, 1): 1.0e9,  # task-clock
        (SW, 2): 2000.0,  # page-faults
        (SW, 3): 1500.0,  # context-switches
        (SW, 4): 40.0,  # cpu-migrations
        (SW, 5): 1990.0,  # minor-faults
        (SW, 6): 10.0,  # major-faults
        (CACHE, 0x00000): 1.2e9,  # L1-dcache-loads
        (CACHE, 0x10000): 6.0e7,  # L1-dcache-load-misses
        (CACHE, 0x00002): 2.0e7,  # LLC-loads
        (CACHE, 0x10002): 4.0e6,  # LLC-load-misses
        (CACHE, 0x00003): 1.2e9,  # dTLB-loads
        (CACHE, 0x10003): 1.2e6,  # dTLB-load-misses
    }
    #: Named sysfs events: per-second amounts in the event's unit-free physical quantity.
    NAMED: ClassVar[dict[str, float]] = {
        "cpu-cycles": 3.0e9,
        "cycles": 3.0e9,
        "instructions": 4.5e9,
        "branch-instructions": 9.0e8,
        "branch-misses": 9.0e6,
        "cache-references": 5.0e7,
        "cache-misses": 1.0e7,
        "energy-pkg": 45.0,  # watts
        "energy-cores": 30.0,
        "energy-ram": 8.0,
        "energy-gpu": 2.0,
        "energy-psys": 60.0,
        "cas_count_read": 3.0e9,  # bytes per second
        "cas_count_write": 1.0e9,
        "data_reads": 3.0e9,
        "data_writes": 1.0e9,
    }

    def __init__(self, clock: FakeClock, sys_root: Path) -> None:
        self.clock = clock
        self.fds: dict[int, dict[str, Any]] = {}
        self.next_fd = 3000
        self.named: dict[tuple[int, int], float] = {}
        pmus = discover_pmus(sys_root)
        for pmu in pmus.values():
            for event in pmu.events.values():
                amount = self.NAMED.get(event.name)
                if amount is None:
                    continue
                try:
                    spec = parse_event(f"{pmu.name}/{event.name}/", pmus)
                except ValueError:
                    continue
                scale = event.scale or 1.0
                if event.unit == "MiB":
                    scale *= 1024 * 1024  # counts of MiB-scaled units -> bytes
                self.named[(spec.type, spec.config)] = amount / scale

    def _rate(self, type_: int, config: int) -> float:
        for key in ((type_, config), (type_, config & 0xFFFFFFFF)):  # hybrid: PMU type in the high bits
            rate = self.GENERIC.get(key) if type_ in (self.HW, self.SW, self.CACHE) else None
            rate = rate if rate is not None else self.named.get(key)
            if rate is not None:
                return rate
        return float(1_000_000 * (1 + zlib.crc32(f"{type_}:{config}".encode()) % 500))

    def perf_event_open(self, attr: Any, pid: int, cpu: int, group_fd: int, flags: int) -> int:
        if group_fd >= 0 and group_fd not in self.fds:
            raise OSError(errno.EBADF, "bad group fd")
        fd = self.next_fd
        self.next_fd += 1
        self.fds[fd] = {
            # Per-CPU factor <= 1, so one CPU never counts more than a second of cpu-clock per second.
            "rate": self._rate(int(attr.type), int(attr.config)) * (1.0 - 0.1 * (max(cpu, 0) % 4)),
            "leader": fd if group_fd < 0 else group_fd,
            "members": [fd],
            "read_format": int(attr.read_format),
            "on": not attr.disabled,
            "count": 0.0,
            "enabled_ns": 0,
            "since": self.clock.monotonic(),
        }
        if group_fd >= 0:
            self.fds[group_fd]["members"].append(fd)
        return fd

    def _settle(self, fd: int) -> None:
        """Bring one counter up to the clock's present."""
        f = self.fds[fd]
        now = self.clock.monotonic()
        leader = self.fds[f["leader"]]
        if f["on"] and leader["on"]:
            f["count"] += f["rate"] * (now - f["since"])
            f["enabled_ns"] += round((now - f["since"]) * 1e9)
        f["since"] = now

    def read(self, fd: int, size: int) -> bytes:
        f = self.fds.get(fd)
        if f is None:
            raise OSError(errno.EBADF, "bad fd")
        fmt = f["read_format"]
        members = f["members"] if fmt & _abi.PERF_FORMAT_GROUP else [fd]
        for m in members:
            self._settle(m)
        times = []
        if fmt & _abi.PERF_FORMAT_TOTAL_TIME_ENABLED:
            times.append(f["enabled_ns"])
        if fmt & _abi.PERF_FORMAT_TOTAL_TIME_RUNNING:
            times.append(f["enabled_ns"])
        words: list[int] = []
        if fmt & _abi.PERF_FORMAT_GROUP:
            words = [len(members), *times]
            for m in members:
                words.append(int(self.fds[m]["count"]))
                if fmt & _abi.PERF_FORMAT_ID:
                    words.append(m)
                if fmt & _abi.PERF_FORMAT_LOST:
                    words.append(0)
        else:
            words = [int(f["count"]), *times]
            if fmt & _abi.PERF_FORMAT_ID:
                words.append(fd)
            if fmt & _abi.PERF_FORMAT_LOST:
                words.append(0)
        return struct.pack(f"={len(words)}Q", *words)[:size]

    def ioctl(self, fd: int, request: int, arg: int) -> int:
        f = self.fds.get(fd)
        if f is None:
            raise OSError(errno.EBADF, "bad fd")
        targets = f["members"] if arg & _abi.PERF_IOC_FLAG_GROUP else [fd]
        for t in targets:
            self._settle(t)
            if request == _abi.PERF_EVENT_IOC_ENABLE:
                self.fds[t]["on"] = True
            elif request == _abi.PERF_EVENT_IOC_DISABLE:
                self.fds[t]["on"] = False
            elif request == _abi.PERF_EVENT_IOC_RESET:
                self.fds[t]["count"] = 0.0
            else:
                raise OSError(errno.ENOTTY, f"unexpected ioctl {request:#x}")
        return 0

    def close(self, fd: int) -> None:
        if self.fds.pop(fd, None) is None:
            raise OSError(errno.EBADF, "bad fd")


class NoDriverNVML:
    """An NVML binding on a machine without the NVIDIA kernel driver."""

    class NVMLError(Exception):
        pass

    class NVMLError_DriverNotLoaded(NVMLError):
        pass

    def nvmlInit(self) -> None:
        raise self.NVMLError_DriverNotLoaded("Driver Not Loaded")

    def nvmlShutdown(self) -> None:
        return None


def machine_statvfs(machine: Path) -> Any:
    """statvfs from ``<machine>/statvfs.json``, re-read per call so it follows the t0 -> t1 switch."""

    def statvfs(path: str) -> os.statvfs_result:
        table = json.loads((machine / "statvfs.json").read_text())
        if path not in table:
            raise FileNotFoundError(errno.ENOENT, "not in the fixture's statvfs table", path)
        return os.statvfs_result(tuple(table[path]))

    return statvfs


def point(link: Path, target: Path) -> None:
    """Atomically re-point the symlink the collectors' roots go through."""
    tmp = link.with_name(link.name + ".new")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


def build(machine: Path, clock: FakeClock) -> Sampler:
    return build_default(
        roots=Roots.under(machine),
        clock=clock,
        host="fixture",
        # A long interval only widens the collection budget: a slow CI machine must not make a collector
        # stale in the golden run. The ticks themselves are called by hand, 1 s apart on the FakeClock.
        interval=60.0,
        timeout=30.0,
        syscalls=FixtureKernel(clock, Roots.under(machine).sys),
        statvfs=machine_statvfs(machine),
        nvml=NoDriverNVML(),
        user_name=lambda uid: {0: "root", 65534: "nobody"}.get(uid, f"user{uid}"),
        clk_tck=100,
        page_size=4096,
        settle=0.0,
    )


def run_scenario(
    scenario: str, tmp_path: Path, first: str = "t0", second: str = "t1"
) -> tuple[Snapshot, Sampler, Path]:
    """Tick on ``first``, switch the tree to ``second`` 1 s later, tick; the second Snapshot."""
    src = MACHINES / scenario
    assert (src / "t0").is_dir() and (src / "t1").is_dir(), f"fixture {src} needs t0/ and t1/"
    tmp_path.mkdir(parents=True, exist_ok=True)
    machine = tmp_path / f"machine-{scenario}"
    point(machine, src / first)
    clock = FakeClock(start=1000.0, wall_start=1_764_000_000.0)
    sampler = build(machine, clock)

    async def two_ticks() -> Snapshot:
        try:
            await sampler.tick()
            point(machine, src / second)
            clock.advance(1.0)
            return await sampler.tick()
        finally:
            await sampler.aclose()

    return asyncio.run(two_ticks()), sampler, machine


def normalise(node: Any, machine: str) -> Any:
    """Zero the volatile fields; the temporary machine path (in reasons naming a file) becomes $MACHINE."""
    if isinstance(node, dict):
        return {k: (0 if k in VOLATILE else normalise(v, machine)) for k, v in node.items()}
    if isinstance(node, list):
        return [normalise(v, machine) for v in node]
    if isinstance(node, str):
        return node.replace(machine, "$MACHINE")
    return node


def as_json(snapshot: Snapshot, machine: Path) -> str:
    doc = normalise(snapshot.as_dict(), str(machine))
    opts = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
    return orjson.dumps(doc, option=opts).decode()


_DURATION_LINE = re.compile(r"^(perfpulse_collector_duration_seconds\{[^}]*\}) \S+$", re.MULTILINE)


def as_prom(snapshot: Snapshot, sampler: Sampler, machine: Path) -> str:
    text = render(snapshot, sampler.aggregator.collectors()).decode().replace(str(machine), "$MACHINE")
    return _DURATION_LINE.sub(r"\1 0.0", text)


def check(path: Path, got: str) -> None:
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
        return
    assert path.exists(), f"{path} is missing: run `make golden` and review the new file"
    want = path.read_text()
    if got != want:
        diff = "".join(
            list(
                difflib.unified_diff(
                    want.splitlines(keepends=True), got.splitlines(keepends=True), str(path), "this run"
                )
            )[:120]
        )
        pytest.fail(f"{path.name} differs from this run (`make golden` regenerates it):\n{diff}")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden(scenario: str, tmp_path: Path) -> None:
    snapshot, sampler, machine = run_scenario(scenario, tmp_path)
    for name, meta in snapshot.meta.items():
        assert not meta.stale, f"{scenario}: {name} went stale in the golden run"
        assert meta.error is None, f"{scenario}: {name} failed: {meta.error}"
    prom = as_prom(snapshot, sampler, machine)
    families = {f.name: f for f in text_string_to_metric_families(prom)}
    assert "perfpulse_collector_success" in families
    check(GOLDEN / f"{scenario}.json", as_json(snapshot, machine))
    check(GOLDEN / f"{scenario}.prom", prom)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_output_is_deterministic(scenario: str, tmp_path: Path) -> None:
    """Two fresh runs give the same bytes: otherwise the golden files would flap."""
    a, sa, ma = run_scenario(scenario, tmp_path / "a")
    b, sb, mb = run_scenario(scenario, tmp_path / "b")
    assert as_json(a, ma) == as_json(b, mb)
    assert as_prom(a, sa, ma) == as_prom(b, sb, mb)


def _all_scenarios() -> list[str]:
    return sorted(
        d.name for d in MACHINES.iterdir() if d.is_dir() and (d / "t0").is_dir() and (d / "t1").is_dir()
    )


@pytest.mark.parametrize("order", [("t0", "t1"), ("t1", "t0")], ids=["forward", "backward"])
@pytest.mark.parametrize("scenario", _all_scenarios())
def test_no_negative_or_absurd_rates(scenario: str, order: tuple[str, str], tmp_path: Path) -> None:
    """Rates are >= 0 and time ratios within [0, 1], forward and with the two captures swapped: backward,
    every cumulative counter decreases, as after a wrap or a reset, and must give no rate at all rather
    than a negative or huge one."""
    snapshot, sampler, _ = run_scenario(scenario, tmp_path, *order)
    bad = []
    for collector in sampler.aggregator.collectors():
        units = {s.name: s.unit for s in collector.catalogue}
        for sample in collector.samples(snapshot.data.get(collector.name, {})):
            unit = units[sample.name]
            if unit in ("per_second", "bytes_per_second", "seconds_per_second") and sample.value < 0:
                bad.append(sample.series_key)
            if unit == "bytes_per_second" and sample.value > 1e13:  # 10 TB/s: no device or NIC does that
                bad.append(f"{sample.series_key}={sample.value:g}")
            if sample.name.endswith("utilization_ratio") and not 0 <= sample.value <= 1:
                bad.append(f"{sample.series_key}={sample.value:g}")
    assert not bad, f"{scenario} {order}: {bad[:20]}"
    if order == ("t1", "t0"):
        # Spot checks that the decrease was seen as a reset: no scheduler or interface rate survives.
        cpu = snapshot.data.get("cpu", {})
        assert cpu.get("context_switches_per_second") is None, cpu.get("context_switches_per_second")
        for name, iface in snapshot.data.get("network", {}).get("interfaces", {}).items():
            assert iface.get("rx_bytes_per_second") in (None, 0.0), (name, iface)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_fast_exposition_equals_prometheus_clients_own_on_each_machine(scenario: str, tmp_path: Path) -> None:
    """``render`` keeps each series' name and labels between scrapes; its text must stay exactly what
    prometheus-client's ``generate_latest`` writes for the same families, on every fixture machine."""
    from prometheus_client import CollectorRegistry, generate_latest

    from perfpulse.exporters.prometheus import Exposition, SnapshotCollector

    snapshot, sampler, _ = run_scenario(scenario, tmp_path)
    collectors = sampler.aggregator.collectors()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(lambda: snapshot, collectors))
    want = generate_latest(registry)
    exposition = Exposition()
    assert exposition.render(snapshot, collectors) == want  # every prefix built
    assert exposition.render(snapshot, collectors) == want  # every prefix kept
