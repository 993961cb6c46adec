"""Run-time configuration: what ``PUT /api/v1/config`` may change, how it takes effect at once, and how it
survives a restart (``<data_dir>/config.json``, written atomically)."""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from perfpulse.collectors.base import BaseCollector
from perfpulse.config import RETENTION_MAX, RETENTION_MIN, Settings, retention_order_problem
from perfpulse.sampler import Sampler

log = logging.getLogger("perfpulse.server")

FILE = "config.json"
#: Event names as `perf list` spells them: "cycles", "cache-misses:u", "cpu/event=0x3c,umask=0x0/k".
EVENT_RE = re.compile(r"^[A-Za-z0-9_.:/=,\-]{1,200}$")

#: The history retention settings, in the order finer tier first.
RETENTION_FIELDS = ("retention_raw_seconds", "retention_minute_seconds", "retention_hour_seconds")

EventName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=EVENT_RE.pattern)]


class ConfigUpdate(BaseModel):
    """The settings that change live. Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    interval: float | None = Field(default=None, ge=0.1, le=60.0, description="seconds between two samples")
    collectors: dict[str, bool] | None = Field(default=None, description="collector name -> enabled")
    perf_events: list[EventName] | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="perf events to count (names as `perf list` gives them)",
    )
    top_n: int | None = Field(
        default=None, ge=1, le=500, description="processes listed in the top-processes table"
    )
    retention_raw_seconds: float | None = Field(
        default=None,
        ge=RETENTION_MIN,
        le=RETENTION_MAX,
        allow_inf_nan=False,
        description="seconds raw samples are kept (at most the 1-minute tier's retention)",
    )
    retention_minute_seconds: float | None = Field(
        default=None,
        ge=RETENTION_MIN,
        le=RETENTION_MAX,
        allow_inf_nan=False,
        description="seconds 1-minute rollups are kept (at most the 1-hour tier's retention)",
    )
    retention_hour_seconds: float | None = Field(
        default=None,
        ge=RETENTION_MIN,
        le=RETENTION_MAX,
        allow_inf_nan=False,
        description="seconds 1-hour rollups are kept",
    )


class FieldProblem(ValueError):
    """A value that passed the schema but cannot be applied here; reported as a 422 for that field."""

    def __init__(self, field: str, message: str, *path: str) -> None:
        super().__init__(message)
        self.loc = ("body", field, *path)


def _takes(collector: BaseCollector, option: str) -> bool:
    try:
        return option in inspect.signature(type(collector).__init__).parameters
    except (TypeError, ValueError):
        return False


def event_collectors(sampler: Sampler) -> list[BaseCollector]:
    return [c for c in sampler.aggregator.collectors() if _takes(c, "events")]


def check_events(events: list[str], sysfs: Path) -> None:
    """Each name must parse against this machine's PMUs (what `perf list` would accept here)."""
    from perfpulse.perf.events import parse_event
    from perfpulse.perf.pmu import discover_pmus

    pmus = discover_pmus(sysfs)
    for i, name in enumerate(events):
        try:
            parse_event(name, pmus)
        except ValueError as exc:  # UnknownEventError included
            raise FieldProblem("perf_events", str(exc), str(i)) from None


class LiveConfig:
    """Applies and persists the run-time settings of one daemon."""

    def __init__(self, settings: Settings, sampler: Sampler, store: Any | None = None) -> None:
        self.settings = settings
        self.sampler = sampler
        #: The history (a History or a bare store) whose retention follows these settings, if any.
        self.store = store
        self.path = settings.data_dir / FILE
        found = [getattr(c, "top_n", None) for c in sampler.aggregator.collectors()]
        self.top_n: int | None = next((n for n in found if isinstance(n, int)), None)
        self.perf_events: list[str] | None = None
        self.retention: dict[str, float] = {f: float(getattr(settings, f)) for f in RETENTION_FIELDS}

    # -- view ---------------------------------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        return {
            "interval": self.sampler.interval,
            "collectors": {c.name: c.enabled for c in self.sampler.aggregator.collectors()},
            "perf_events": self.perf_events,
            "top_n": self.top_n,
            **self.retention,
            "limits": {
                "interval": [0.1, 60.0],
                "top_n": [1, 500],
                "perf_events": 64,
                **{f: [RETENTION_MIN, RETENTION_MAX] for f in RETENTION_FIELDS},
            },
        }

    # -- change -------------------------------------------------------------------------------------------
    def validate(self, update: ConfigUpdate) -> None:
        """Raise FieldProblem for the first value that cannot apply to this daemon's collectors."""
        if update.collectors is not None:
            known = set(self.sampler.aggregator.names())
            for name in update.collectors:
                if name not in known:
                    raise FieldProblem(
                        "collectors", f"unknown collector {name!r}; known: {', '.join(sorted(known))}", name
                    )
        if update.perf_events is not None:
            targets = event_collectors(self.sampler)
            if not targets:
                raise FieldProblem("perf_events", "no collector here counts perf events")
            check_events(update.perf_events, targets[0].roots.sys)
        given = {f: getattr(update, f) for f in RETENTION_FIELDS if getattr(update, f) is not None}
        if given:
            merged = {**self.retention, **given}
            problem = retention_order_problem(*(merged[f] for f in RETENTION_FIELDS))
            if problem is not None:
                field, message = problem
                if field not in given:  # blame the value that was sent, not the one it collides with
                    field = next(f for f in RETENTION_FIELDS if f in given)
                raise FieldProblem(field, message)

    def apply(self, update: ConfigUpdate, *, persist: bool = True) -> list[str]:
        """Apply ``update`` (validated first, so a bad field changes nothing); returns the fields changed."""
        self.validate(update)
        changed: list[str] = []
        if update.interval is not None and update.interval != self.sampler.interval:
            self.sampler.interval = update.interval
            changed.append("interval")
        if update.collectors is not None:
            for c in self.sampler.aggregator.collectors():
                want = update.collectors.get(c.name)
                if want is not None and want != c.enabled:
                    c.enabled = want
                    changed.append("collectors")
        if update.top_n is not None and update.top_n != self.top_n:
            self.top_n = update.top_n
            for c in self.sampler.aggregator.collectors():
                if hasattr(c, "top_n"):
                    c.top_n = update.top_n
            changed.append("top_n")
        if update.perf_events is not None and update.perf_events != self.perf_events:
            self.perf_events = list(update.perf_events)
            self._rebuild_event_collectors(self.perf_events)
            changed.append("perf_events")
        retention_changed = False
        for field in RETENTION_FIELDS:
            value = getattr(update, field)
            if value is not None and value != self.retention[field]:
                self.retention[field] = value
                changed.append(field)
                retention_changed = True
        if retention_changed:
            self.apply_retention()
        if persist and changed:
            self.save()
        return sorted(set(changed))

    def _rebuild_event_collectors(self, events: Iterable[str]) -> None:
        """A new event set means new perf file descriptors: the collector is replaced by a fresh one built
        with the new events (the old one's descriptors are closed by the aggregator)."""
        agg = self.sampler.aggregator
        for old in event_collectors(self.sampler):
            cls = type(old)
            kwargs: dict[str, Any] = {"roots": old.roots, "enabled": old.enabled, "events": list(events)}
            if _takes(old, "clock"):
                kwargs["clock"] = self.sampler.clock.monotonic
            new = cls(**kwargs)
            agg.remove(old.name)
            agg.add(new)

    def apply_retention(self) -> None:
        """The history's next retention run, and every query from now on, use the new horizons."""
        if self.store is None or not hasattr(self.store, "retention"):
            return
        from perfpulse.storage.tiers import Retention

        raw, minute, hour = (self.retention[f] for f in RETENTION_FIELDS)
        retention = Retention(raw=raw, minute=minute, hour=hour)
        setter = getattr(self.store, "set_retention", None)
        if callable(setter):
            setter(retention)
        else:
            self.store.retention = retention

    # -- persistence --------------------------------------------------------------------------------------
    def saved(self) -> dict[str, Any]:
        return {
            "interval": self.sampler.interval,
            "collectors": {c.name: c.enabled for c in self.sampler.aggregator.collectors()},
            "perf_events": self.perf_events,
            "top_n": self.top_n,
            **self.retention,
        }

    def save(self) -> None:
        tmp = self.path.with_name(f".{FILE}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.saved(), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def restore(self, *, pinned: Iterable[str] = ()) -> list[str]:
        """Re-apply what was saved, except the settings named on the command line (``pinned``). A file
        that no longer validates (a collector removed, a limit tightened) is applied field by field; what
        fails is logged and skipped, never fatal."""
        try:
            raw = json.loads(Path(self.path).read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("ignoring saved settings in %s: %s", self.path, exc)
            return []
        if not isinstance(raw, dict):
            log.warning("ignoring saved settings in %s: not a JSON object", self.path)
            return []
        skip = set(pinned)
        if "collectors" in skip:
            raw.pop("collectors", None)
        applied: list[str] = []
        # The retention horizons are checked against each other, so they are re-applied together.
        together = {k: raw.pop(k) for k in RETENTION_FIELDS if k in raw}
        together = {k: v for k, v in together.items() if k not in skip and v is not None}
        if together:
            try:
                applied += self.apply(ConfigUpdate.model_validate(together), persist=False)
            except (ValueError, TypeError) as exc:
                log.warning("ignoring saved retention %r: %s", together, exc)
        for key, value in raw.items():
            if key in skip or value is None:
                continue
            if key == "collectors" and isinstance(value, dict):
                known = set(self.sampler.aggregator.names())
                kept: Any = {k: v for k, v in value.items() if k in known}
            else:
                kept = value
            try:
                update = ConfigUpdate.model_validate({key: kept})
                applied += self.apply(update, persist=False)
            except (ValueError, TypeError) as exc:
                log.warning("ignoring saved setting %s=%r: %s", key, kept, exc)
        return applied


def remove_saved(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / FILE).unlink()
