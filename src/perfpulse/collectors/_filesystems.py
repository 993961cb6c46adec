"""Mounted filesystems for the disk collector, and a statvfs that cannot hang its caller.

statvfs(2) on a network or FUSE filesystem whose server is gone blocks in the kernel, often uninterruptibly,
and no timeout can be passed to it. So each mount point gets its own daemon worker thread, and a caller
waits for all of them at most one deadline. A call that misses the deadline marks the mount *stuck*: no
further call is queued for it until the hung one returns, so one dead mount costs exactly one blocked
thread, never a pile. Daemon threads, not a ThreadPoolExecutor: the executor joins its workers at
interpreter exit, and a process holding a hung statvfs could then never exit.

Filesystems that keep their counters in the kernel's memory and have no server to wait for (ext4, xfs,
btrfs and the other local disk filesystems in :data:`LOCAL_FS`) are asked directly instead: their statfs
reads in-memory superblock counters, and a hand-off to a worker thread and back costs more CPU than the
call itself (two thread wake-ups per mount per tick). Only the real ``os.statvfs`` is called this way; a
stand-in function may block on anything and always goes through a worker.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfpulse.procfs import ParseError
from perfpulse.procfs.files import read
from perfpulse.procfs.mounts import Mount, parse_mounts

StatvfsFunc = Callable[[str], os.statvfs_result]

#: Filesystem types that hold no user data (kernel interfaces, RAM-backed, read-only images).
PSEUDO_FS = frozenset(
    (
        *("proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "ramfs", "cgroup", "cgroup2", "cpuset"),
        *("securityfs", "pstore", "efivarfs", "bpf", "debugfs", "tracefs", "configfs", "fusectl", "mqueue"),
        *("hugetlbfs", "autofs", "binfmt_misc", "rpc_pipefs", "nsfs", "selinuxfs", "nfsd", "squashfs"),
        *("fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal"),
    )
)


#: Local disk filesystems whose statfs answers from in-memory counters, called without a worker thread.
#: Network (nfs, cifs, ceph...), FUSE, overlay (its answer comes from whatever the upper layer is) and
#: unknown types stay bounded.
LOCAL_FS = frozenset(
    {
        *("ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "vfat", "msdos", "exfat", "jfs", "reiserfs"),
        *("nilfs2", "hfsplus", "udf", "iso9660", "erofs", "bcachefs"),
    }
)


@dataclass(slots=True)
class StatvfsAnswer:
    """One mount's answer this tick: a result, an error, or stuck (no answer for ``stuck_for`` seconds)."""

    result: os.statvfs_result | None = None
    error: str | None = None
    stuck_for: float | None = None


class _Worker:
    def __init__(self, func: StatvfsFunc, name: str) -> None:
        self._func = func
        self._jobs: queue.SimpleQueue[tuple[str, Future[os.statvfs_result]] | None] = queue.SimpleQueue()
        self.pending: Future[os.statvfs_result] | None = None
        self.started = 0.0
        threading.Thread(target=self._run, name=f"statvfs {name[:40]}", daemon=True).start()

    def submit(self, path: str, now: float) -> Future[os.statvfs_result]:
        fut: Future[os.statvfs_result] = Future()
        self.pending, self.started = fut, now
        self._jobs.put((path, fut))
        return fut

    def busy(self) -> bool:
        return self.pending is not None and not self.pending.done()

    def stop(self) -> None:
        self._jobs.put(None)  # a hung worker exits once its call returns

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            path, fut = job
            try:
                fut.set_result(self._func(path))
            except BaseException as exc:  # reported to the caller, never lost in the thread
                fut.set_exception(exc)


class BoundedStatvfs:
    """statvfs for many mount points at once, bounded by ``deadline`` seconds per call of :meth:`query`."""

    def __init__(self, func: StatvfsFunc = os.statvfs, *, deadline: float = 0.5) -> None:
        self.func = func
        self.deadline = deadline
        self._workers: dict[str, _Worker] = {}

    def _call(self, path: str) -> os.statvfs_result:
        return self.func(path)  # looked up per call: tests and fixture replays swap ``func`` between ticks

    def query(self, paths: Iterable[str], local: Collection[str] = ()) -> dict[str, StatvfsAnswer]:
        """One answer per path. Paths in ``local`` (mount points of :data:`LOCAL_FS` filesystems) are asked
        directly when ``func`` is the real ``os.statvfs``; every other one through its worker."""
        now = time.monotonic()
        wanted = list(dict.fromkeys(paths))
        for gone in set(self._workers) - set(wanted):
            self._workers.pop(gone).stop()
        futures: dict[str, Future[os.statvfs_result]] = {}
        answers: dict[str, StatvfsAnswer] = {}
        direct = local if self.func is os.statvfs else ()
        for path in wanted:
            if path in direct and path not in self._workers:
                try:
                    answers[path] = StatvfsAnswer(result=os.statvfs(path))
                except OSError as failed:
                    answers[path] = StatvfsAnswer(error=f"{type(failed).__name__}: {failed}")
                continue
            worker = self._workers.get(path)
            if worker is None:
                worker = self._workers[path] = _Worker(self._call, path)
            if worker.busy():
                answers[path] = StatvfsAnswer(stuck_for=now - worker.started)
            else:
                futures[path] = worker.submit(path, now)
        if futures:
            wait(futures.values(), timeout=self.deadline)
        for path, fut in futures.items():
            if not fut.done():
                answers[path] = StatvfsAnswer(stuck_for=time.monotonic() - now)
            elif (exc := fut.exception()) is not None:
                answers[path] = StatvfsAnswer(error=f"{type(exc).__name__}: {exc}")
            else:
                answers[path] = StatvfsAnswer(result=fut.result())
        return {p: answers[p] for p in wanted}

    def workers(self) -> int:
        """Worker threads kept, one per mount point asked through a worker."""
        return len(self._workers)

    def in_flight(self) -> int:
        """Calls still running: at most one per mount point."""
        return sum(1 for w in self._workers.values() if w.busy())

    def close(self) -> None:
        for w in self._workers.values():
            w.stop()
        self._workers.clear()


def table_statvfs(table: Mapping[str, Sequence[int]] | Path | str) -> StatvfsFunc:
    """A statvfs answering from ``{mountpoint: [bsize, frsize, blocks, bfree, bavail, files, ffree, favail,
    flag, namemax]}`` (or a JSON file of it): the filesystems of a fixture tree are not on this machine."""
    rows: Mapping[str, Sequence[int]] = (
        table if isinstance(table, Mapping) else json.loads(Path(table).read_text())
    )
    fixed = {k: os.statvfs_result(tuple(v)) for k, v in rows.items()}

    def statvfs(path: str) -> os.statvfs_result:
        if path not in fixed:
            raise FileNotFoundError(2, "not in the statvfs table", path)
        return fixed[path]

    return statvfs


def real_mounts(proc_root: Path) -> list[Mount]:
    """Mounts of real filesystems in the reader's mount namespace (self/mounts; mounts in fixture trees)."""
    for rel in ("self/mounts", "mounts"):
        try:
            mounts = parse_mounts(read(proc_root / rel))
        except (OSError, ParseError):
            continue
        seen: dict[str, Mount] = {}
        for m in mounts:  # a later mount on the same point hides the earlier one
            if m.fstype not in PSEUDO_FS:
                seen[m.mountpoint] = m
            else:
                seen.pop(m.mountpoint, None)
        return list(seen.values())
    return []


def filesystem_usage(mounts: list[Mount], host_root: Path, statvfs: BoundedStatvfs) -> dict[str, Any]:
    """Size, use and inodes per mount point; statvfs runs on the mount point under ``host_root``."""
    host = {m.mountpoint: str(host_root / m.mountpoint.lstrip("/")) for m in mounts}
    answers = statvfs.query(host.values(), {host[m.mountpoint] for m in mounts if m.fstype in LOCAL_FS})
    out: dict[str, Any] = {}
    for m in mounts:
        a = answers[host[m.mountpoint]]
        fs: dict[str, Any] = {"device": m.source, "fstype": m.fstype, "stuck": 0}
        if a.stuck_for is not None:
            fs.update(stuck=1, state="stuck", error=f"statvfs has not answered for {a.stuck_for:.1f} s")
        elif a.result is None:
            fs.update(state="error", error=a.error)
        else:
            v, frsize = a.result, a.result.f_frsize or a.result.f_bsize
            used = (v.f_blocks - v.f_bfree) * frsize
            avail = v.f_bavail * frsize
            fs.update(
                state="ok",
                size_bytes=v.f_blocks * frsize,
                used_bytes=used,
                available_bytes=avail,
                used_ratio=used / (used + avail) if used + avail > 0 else None,
                inodes_total=v.f_files,
                inodes_free=v.f_ffree,
                inodes_used=max(0, v.f_files - v.f_ffree),
            )
        out[m.mountpoint] = fs
    return out
