"""/proc/diskstats: cumulative I/O counters per block device.

Layout: Documentation/admin-guide/iostats.rst. After major, minor and name come 11 fields (all kernels
since 2.6.25), 4 discard fields since 4.18 and 2 flush fields since 5.5; missing ones read as None. Sectors
are always 512 bytes here, whatever the device's logical block size.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpulse.procfs import ParseError, as_text, to_ints

SECTOR_BYTES = 512


@dataclass(frozen=True, slots=True)
class DiskStat:
    major: int
    minor: int
    name: str
    reads: int
    reads_merged: int
    sectors_read: int
    read_ms: int
    writes: int
    writes_merged: int
    sectors_written: int
    write_ms: int
    in_flight: int
    io_ms: int  # time the device had I/O in flight ("io_ticks"): utilisation
    weighted_io_ms: int  # sum over requests of their time in queue: average queue depth
    discards: int | None = None
    discard_sectors: int | None = None
    discard_ms: int | None = None
    flushes: int | None = None
    flush_ms: int | None = None


def parse_diskstats(data: bytes | str) -> dict[str, DiskStat]:
    """Devices by kernel name (``nvme0n1``, ``dm-0``); the order of the file is kept."""
    text = as_text(data, "/proc/diskstats")
    out: dict[str, DiskStat] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 14:
            raise ParseError(f"/proc/diskstats: expected at least 14 fields, got {len(parts)}")
        name = parts[2]
        what = f"/proc/diskstats {name[:40]}"
        nums = to_ints(parts[3:20], what)
        major, minor = to_ints(parts[:2], what)
        if any(v < 0 for i, v in enumerate(nums) if i != 8):
            raise ParseError(f"{what}: negative counter")
        nums[8] = max(nums[8], 0)  # in-flight has been seen to underflow on some kernels
        nums += [-1] * (17 - len(nums))
        opt = [None if v < 0 else v for v in nums[11:17]]
        out[name] = DiskStat(
            major,
            minor,
            name,
            nums[0],
            nums[1],
            nums[2],
            nums[3],
            nums[4],
            nums[5],
            nums[6],
            nums[7],
            nums[8],
            nums[9],
            nums[10],
            discards=opt[0],
            discard_sectors=opt[2],
            discard_ms=opt[3],
            flushes=opt[4],
            flush_ms=opt[5],
        )
    return out
