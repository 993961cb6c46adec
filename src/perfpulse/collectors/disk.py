"""Disk: per block device I/O rates from /proc/diskstats, per mounted filesystem space from statvfs.

Each device is marked ``whole`` (a physical disk), ``partition``, ``dm`` (device-mapper: LVM, LUKS, with
its name), ``md`` (software RAID) or ``virtual`` (loop, zram, ram: a whole device without a backing
``device`` in sysfs). Totals add up ``whole`` devices only: the I/O of a partition, a dm or an md device is
also counted on the disks below it, so adding them would count the same bytes twice or more. Devices of
size 0 (unattached loop devices, empty drives) are left out. Filesystems: statvfs runs in
:class:`BoundedStatvfs`, so a dead NFS or FUSE server marks its mount ``stuck`` instead of hanging the tick.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from perfpulse.collectors._filesystems import (
    PSEUDO_FS,
    BoundedStatvfs,
    StatvfsFunc,
    filesystem_usage,
    real_mounts,
    table_statvfs,
)
from perfpulse.collectors.base import BaseCollector, Roots, register, run_blocking, unavailable
from perfpulse.model import MetricSpec
from perfpulse.procfs import ParseError
from perfpulse.procfs.diskstats import SECTOR_BYTES, DiskStat, parse_diskstats
from perfpulse.procfs.files import read, read_attr, tree_id, why
from perfpulse.procfs.sysfs import parse_int, parse_word
from perfpulse.rates import CounterTracker, read_boot_id

__all__ = ["PSEUDO_FS", "DiskCollector", "table_statvfs"]

_TOPOLOGY_TTL_S = 60.0  # loop devices attach without a new diskstats line; re-read sysfs once a minute
_MAX_BYTES_PER_S = 1e12
_MAX_OPS_PER_S = 1e9


def _g(name: str, unit: str, desc: str, path: str, labels: tuple[str, ...] = ("device",)) -> MetricSpec:
    return MetricSpec(name, unit, "gauge", desc, path, labels)


def _dev(name: str, unit: str, desc: str, key: str) -> MetricSpec:
    return _g(f"disk_{name}", unit, desc, f"devices.*.{key}")


def _tot(name: str, unit: str, desc: str, key: str) -> MetricSpec:
    return _g(f"disk_total_{name}", unit, desc, f"total.{key}", ())


def _fs(name: str, unit: str, desc: str, key: str) -> MetricSpec:
    return _g(f"filesystem_{name}", unit, desc, f"filesystems.*.{key}", ("mountpoint",))


@register
class DiskCollector(BaseCollector):
    name = "disk"
    catalogue = (
        _dev("read_bytes_per_second", "bytes_per_second", "Bytes read", "read_bytes_per_second"),
        _dev("write_bytes_per_second", "bytes_per_second", "Bytes written", "write_bytes_per_second"),
        _dev("reads_per_second", "per_second", "Read operations completed", "reads_per_second"),
        _dev("writes_per_second", "per_second", "Write operations completed", "writes_per_second"),
        _dev("await_seconds", "seconds", "Mean time per completed I/O, queue included", "await_seconds"),
        _dev("utilization_ratio", "ratio", "Share of time with I/O in flight", "utilization_ratio"),
        _dev("queue_depth", "count", "Mean number of I/Os in flight (aqu-sz)", "queue_depth"),
        _dev("in_flight", "count", "I/Os in flight now", "in_flight"),
        _dev("size_bytes", "bytes", "Device capacity", "size_bytes"),
        _g("disk_device_info", "info", "Device kind", "info.*.*", ("device", "kind")),
        _tot("read_bytes_per_second", "bytes_per_second", "Read, whole disks", "read_bytes_per_second"),
        _tot("write_bytes_per_second", "bytes_per_second", "Written, whole disks", "write_bytes_per_second"),
        _tot("reads_per_second", "per_second", "Reads, whole disks", "reads_per_second"),
        _tot("writes_per_second", "per_second", "Writes, whole disks", "writes_per_second"),
        _fs("size_bytes", "bytes", "Filesystem size", "size_bytes"),
        _fs("used_bytes", "bytes", "Space in use", "used_bytes"),
        _fs("available_bytes", "bytes", "Space available to unprivileged users", "available_bytes"),
        _fs("used_ratio", "ratio", "Share in use, as df's Use%", "used_ratio"),
        _fs("inodes_total", "count", "Inodes", "inodes_total"),
        _fs("inodes_used", "count", "Inodes in use", "inodes_used"),
        _fs("inodes_free", "count", "Inodes free", "inodes_free"),
        _fs("stuck", "count", "1 while statvfs has not answered within its deadline", "stuck"),
    )  # fmt: skip

    def __init__(
        self,
        *,
        roots: Roots | None = None,
        enabled: bool = True,
        timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        statvfs: StatvfsFunc = os.statvfs,
        statvfs_deadline: float = 0.5,
        host_root: Path | str = "/",
    ) -> None:
        super().__init__(roots=roots, enabled=enabled, timeout=timeout)
        self._clock = clock
        self._tracker = CounterTracker(clock=clock, boot_id=lambda: read_boot_id(str(self.roots.proc)))
        self.statvfs = BoundedStatvfs(statvfs, deadline=statvfs_deadline)
        self.host_root = Path(host_root)
        self._topo: dict[str, dict[str, Any]] = {}
        self._topo_key: tuple[object, frozenset[str]] | None = None
        self._topo_at = float("-inf")

    def unavailable_reason(self) -> str | None:
        if not os.access(self.roots.proc / "diskstats", os.R_OK):
            return f"{self.roots.proc / 'diskstats'} cannot be read (no block layer statistics here)"
        return None

    def hint(self) -> str | None:
        return "inside a container, bind-mount the host's /proc read-only and point the proc root at it"

    def blocking_call(self) -> Callable[[], dict[str, Any]]:
        return self._collect

    async def collect(self) -> dict[str, Any]:
        return await run_blocking(self._collect)

    def close(self) -> None:
        self.statvfs.close()

    def _collect(self) -> dict[str, Any]:
        path = self.roots.proc / "diskstats"
        try:
            stats = parse_diskstats(read(path))
        except (OSError, ParseError) as exc:
            return unavailable(f"cannot read {path}: {why(exc)}", self.hint())
        topo = self._topology(stats)
        devices: dict[str, Any] = {}
        # A disk seen for the first time (hot-plugged) has no rate yet and adds nothing to this interval's
        # total; the total is unknown only while no disk has a rate (the first tick, or a reset of all).
        total: dict[str, float | None] = dict.fromkeys(
            ("read_bytes_per_second", "write_bytes_per_second", "reads_per_second", "writes_per_second")
        )
        with self._tracker.tick():
            for name, st in stats.items():
                info = topo.get(name)
                if info is None:
                    continue
                dev = {**info, **self._rates(name, st)}
                devices[name] = dev
                if info["kind"] == "whole":
                    for k, t in total.items():
                        if dev[k] is not None:
                            total[k] = dev[k] + (t or 0.0)
        return {
            "available": True,
            "devices": devices,
            "info": {n: {d["kind"]: 1} for n, d in devices.items()},
            "total": total,
            "filesystems": filesystem_usage(real_mounts(self.roots.proc), self.host_root, self.statvfs),
        }

    def _rates(self, name: str, st: DiskStat) -> dict[str, Any]:
        tr = self._tracker
        lim_b, lim_o = _MAX_BYTES_PER_S, _MAX_OPS_PER_S
        rb = tr.rate((name, "rb"), st.sectors_read * SECTOR_BYTES, limit=lim_b)
        wb = tr.rate((name, "wb"), st.sectors_written * SECTOR_BYTES, limit=lim_b)
        r = tr.rate((name, "r"), st.reads, limit=lim_o)
        w = tr.rate((name, "w"), st.writes, limit=lim_o)
        ms = tr.rate((name, "ms"), st.read_ms + st.write_ms)
        busy = tr.rate((name, "io"), st.io_ms)
        weighted = tr.rate((name, "wio"), st.weighted_io_ms)
        ops = None if r is None or w is None else r.delta + w.delta
        return {
            "read_bytes_per_second": None if rb is None else rb.per_second,
            "write_bytes_per_second": None if wb is None else wb.per_second,
            "reads_per_second": None if r is None else r.per_second,
            "writes_per_second": None if w is None else w.per_second,
            # iostat's await: time of the I/Os completed in the interval over their number (0 with none).
            "await_seconds": None if ms is None or ops is None else (ms.delta / ops / 1000.0 if ops else 0.0),
            "utilization_ratio": None if busy is None else min(1.0, busy.per_second / 1000.0),
            "queue_depth": None if weighted is None else weighted.per_second / 1000.0,
            "in_flight": st.in_flight,
        }

    def _topology(self, stats: Mapping[str, DiskStat]) -> dict[str, dict[str, Any]]:
        """Kind, size, dm name and parents per device; re-read when the device set changes, or each minute."""
        key = (tree_id(self.roots.sys), frozenset(stats))
        now = self._clock()
        if key == self._topo_key and now - self._topo_at < _TOPOLOGY_TTL_S:
            return self._topo
        block = self.roots.sys / "block"
        parent_of: dict[str, str] = {}
        try:
            disks = os.listdir(block)
        except OSError:
            disks = []
        for disk in disks:
            try:
                for entry in os.listdir(block / disk):
                    if entry in stats and os.path.exists(block / disk / entry / "partition"):
                        parent_of[entry] = disk
            except OSError:
                continue
        topo: dict[str, dict[str, Any]] = {}
        for name in stats:
            base = block / parent_of[name] / name if name in parent_of else block / name
            size = read_attr(base / "size", parse_int)
            if not size:
                continue  # no media, or the device is gone from sysfs
            info: dict[str, Any] = {"size_bytes": size * 512, "kind": "whole"}
            if name in parent_of:
                info.update(kind="partition", parent=parent_of[name])
            elif os.path.isdir(base / "dm"):
                info.update(
                    kind="dm",
                    dm_name=read_attr(base / "dm/name", parse_word),
                    slaves=_listdir(base / "slaves"),
                )
            elif os.path.isdir(base / "md"):
                info.update(kind="md", slaves=_listdir(base / "slaves"))
            elif not os.path.exists(base / "device"):
                info["kind"] = "virtual"
            topo[name] = info
        self._topo, self._topo_key, self._topo_at = topo, key, now
        return topo


def _listdir(path: Path) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
