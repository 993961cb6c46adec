"""The collector contract and the registry of collector classes.

A collector reads one source (a /proc file, a PMU, NVML) and returns one tick of data as a dict. It never
raises out of ``safe_collect()``, never blocks the event loop (blocking reads go through ``run_blocking``,
or, where the whole collection is one blocking call, ``blocking_call()`` hands it to the aggregator's shared
worker thread), and declares the numeric series it produces in ``catalogue`` so that export, history and UI
need no knowledge of it.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from perfpulse.model import MetricSpec, Sample, iter_samples

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Roots:
    """Where the kernel's pseudo-filesystems are. Tests point these at fixture trees."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    cgroup: Path = Path("/sys/fs/cgroup")

    @classmethod
    def under(cls, base: Path | str) -> Roots:
        """Roots of a fixture tree laid out as ``base/proc`` and ``base/sys``."""
        b = Path(base)
        return cls(proc=b / "proc", sys=b / "sys", cgroup=b / "sys" / "fs" / "cgroup")


def unavailable(reason: str, hint: str | None = None, **extra: Any) -> dict[str, Any]:
    """The shape a collector returns when its source cannot be read here."""
    out: dict[str, Any] = {"available": False, "reason": reason}
    if hint:
        out["hint"] = hint
    out.update(extra)
    return out


class BaseCollector(abc.ABC):
    """One source of metrics.

    Subclasses set ``name`` and ``catalogue``, and implement ``collect()``. ``is_available()`` must be cheap
    and must not raise; when it returns False, ``unavailable_reason()`` says why and ``hint()`` what to do.
    ``sensitive`` lists top-level data keys only admins may see (process command lines, for instance).
    ``sticky`` lists top-level data keys whose value seldom changes from one tick to the next (and is large):
    a lean WebSocket client is sent them only when they change.
    """

    name: ClassVar[str]
    catalogue: ClassVar[tuple[MetricSpec, ...]] = ()
    sensitive: ClassVar[frozenset[str]] = frozenset()
    sticky: ClassVar[frozenset[str]] = frozenset()
    #: Seconds one collection may take before the tick goes on without it (the collector is then stale).
    default_timeout: ClassVar[float] = 2.0

    def __init__(self, *, roots: Roots | None = None, enabled: bool = True, timeout: float | None = None):
        self.roots = roots or Roots()
        self.enabled = enabled
        self.timeout = self.default_timeout if timeout is None else timeout

    # -- availability -------------------------------------------------------------------------------------
    def is_available(self) -> bool:
        return self.unavailable_reason() is None

    def unavailable_reason(self) -> str | None:
        """None when the source can be read here, else a sentence saying why not."""
        return None

    def hint(self) -> str | None:
        """What the user can do to make an unavailable collector available."""
        return None

    # -- collection ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def collect(self) -> dict[str, Any]:
        """One tick of data, or ``unavailable(reason)`` when the source cannot be read."""

    def blocking_call(self) -> Callable[[], dict[str, Any]] | None:
        """The one blocking call this tick's ``collect()`` would make; None when it must run as a coroutine.

        A collector whose collection is a single blocking read (most /proc and sysfs collectors) returns it,
        and the aggregator runs such calls back to back on one worker thread per tick rather than handing
        each to a thread of its own: at 1 Hz the hand-offs cost more CPU than the reads.
        """
        return None

    async def safe_collect(self) -> dict[str, Any]:
        """``collect()`` that never raises; adds ``timestamp``, ``duration_ms`` and ``error``."""
        ts = time.time()
        t0 = time.perf_counter()
        try:
            data = await self.collect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a collector bug must not take the others down
            return _stamped({}, ts, t0, exc)
        return _stamped(data, ts, t0, None)

    def safe_collect_blocking(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``safe_collect()`` for a collection that is one blocking call, run on a worker thread."""
        ts = time.time()
        t0 = time.perf_counter()
        try:
            data = call()
        except Exception as exc:  # a collector bug must not take the others down
            return _stamped({}, ts, t0, exc)
        return _stamped(data, ts, t0, None)

    def close(self) -> None:
        """Release what the collector holds (file descriptors, library handles). Idempotent."""
        return None

    # -- catalogue ----------------------------------------------------------------------------------------
    def samples(self, data: Mapping[str, Any]) -> Iterator[Sample]:
        """Every numeric sample of the catalogue present in ``data`` (one tick of this collector)."""
        for spec in self.catalogue:
            yield from iter_samples(spec, data)

    def describe(self) -> dict[str, Any]:
        reason = self.unavailable_reason()
        return {
            "name": self.name,
            "enabled": self.enabled,
            "available": reason is None,
            "reason": reason,
            "hint": None if reason is None else self.hint(),
            "catalogue": [m.as_dict() for m in self.catalogue],
        }


def _stamped(data: Mapping[str, Any], ts: float, t0: float, exc: Exception | None) -> dict[str, Any]:
    """A collection's data plus what ``safe_collect()`` adds: when it began, how long it took, what failed."""
    out = dict(data)
    out["timestamp"] = ts
    out["duration_ms"] = (time.perf_counter() - t0) * 1000.0
    out["error"] = None if exc is None else f"{type(exc).__name__}: {exc}"
    return out


async def run_blocking(func: Callable[..., T], *args: Any) -> T:
    """Run blocking work (file reads, psutil, ioctl) off the event loop."""
    return await asyncio.to_thread(func, *args)


_REGISTRY: dict[str, type[BaseCollector]] = {}


def register(cls: type[BaseCollector]) -> type[BaseCollector]:
    """Class decorator: make a collector known by its ``name`` (used by the CLI, config and server)."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"collector name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[BaseCollector]]:
    """All collector classes by name, importing the built-in ones first.

    The order is the order of ``BUILTIN`` (then any others by name), never import order: which module a
    program happened to import first must not change the order of snapshots, exports or the UI.
    """
    import perfpulse.collectors as pkg

    pkg.load_builtin()
    rank = {f"perfpulse.collectors.{mod}": i for i, mod in enumerate(pkg.BUILTIN)}

    def key(item: tuple[str, type[BaseCollector]]) -> tuple[int, str]:
        return rank.get(item[1].__module__, len(rank)), item[0]

    return dict(sorted(_REGISTRY.items(), key=key))
