"""Temperature sensors from sysfs: hwmon chips (ABI: sysfs-class-hwmon), else thermal zones.

Which files exist changes only when a driver loads, so the list is discovered once a minute and only the
``temp*_input`` values are read on each tick. Two chips with one driver name (two ``coretemp`` packages,
several ``nvme`` drives) are told apart by their hwmon number: ``coretemp_0``, ``coretemp_1``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perfpulse.procfs import ParseError
from perfpulse.procfs.files import read_attr, read_optional, tree_id
from perfpulse.procfs.sysfs import parse_int, parse_line, parse_word

_RESCAN_SENSORS_S = 60.0


class Sensors:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sensors: list[tuple[str, str, Path]] = []
        self._sensors_at = float("-inf")
        self._sensors_root: object = None

    def read(self, sys_root: Path) -> dict[str, Any]:
        """Every sensor in degrees Celsius, or why there are none."""
        now = self._clock()
        key = tree_id(sys_root)
        if self._sensors_root != key or now - self._sensors_at > _RESCAN_SENSORS_S:
            self._sensors = _discover_sensors(sys_root)
            self._sensors_at, self._sensors_root = now, key
        if not self._sensors:
            return {
                "available": False,
                "reason": "no temperature sensors exposed in /sys/class/hwmon or /sys/class/thermal "
                "(usual inside virtual machines)",
            }
        sensors: dict[str, dict[str, float]] = {}
        for chip, label, path in self._sensors:
            try:
                raw = read_optional(path)
                if raw is not None:
                    sensors.setdefault(chip, {})[label] = parse_int(raw) / 1000.0
            except (OSError, ParseError):
                continue
        return {"available": True, "sensors": sensors}


def _discover_sensors(sys_root: Path) -> list[tuple[str, str, Path]]:
    """(chip, sensor, file) for every hwmon temperature input and thermal zone (ABI: sysfs-class-hwmon)."""
    found: list[tuple[str, str, Path]] = []
    hwmon = sys_root / "class/hwmon"
    try:
        chips = sorted(os.listdir(hwmon), key=lambda n: (len(n), n))
    except OSError:
        chips = []
    names = [read_attr(hwmon / c / "name", parse_word) or c for c in chips]
    for chip_dir, name in zip(chips, names, strict=True):
        chip = name if names.count(name) == 1 else f"{name}_{chip_dir.removeprefix('hwmon')}"
        try:
            entries = sorted(os.listdir(hwmon / chip_dir))
        except OSError:
            continue
        for entry in entries:
            if entry.startswith("temp") and entry.endswith("_input"):
                stem = entry.removesuffix("_input")
                found.append(
                    (
                        chip,
                        read_attr(hwmon / chip_dir / f"{stem}_label", parse_line) or stem,
                        hwmon / chip_dir / entry,
                    )
                )
    if not found:
        thermal = sys_root / "class/thermal"
        try:
            zones = sorted(z for z in os.listdir(thermal) if z.startswith("thermal_zone"))
        except OSError:
            zones = []
        for zone in zones:
            found.append(
                (
                    "thermal",
                    f"{read_attr(thermal / zone / 'type', parse_word) or zone}_{zone[12:]}",
                    thermal / zone / "temp",
                )
            )
    return found
