"""`perfpulse snapshot`: one sample of every collector, printed for a person or as JSON.

Two ticks are taken one interval apart and the second is printed: the first has no previous reading of any
counter, so it would show no rates at all.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import defaultdict
from typing import Any, TextIO

import orjson

from perfpulse.collectors.aggregator import MetricsAggregator
from perfpulse.collectors.base import BaseCollector, registry
from perfpulse.model import Sample, Snapshot
from perfpulse.sampler import Sampler, build_collectors, check_interval

#: Labelled series shown per metric in the human output before "... N more".
SERIES_SHOWN = 8


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "snapshot",
        help="print one sample of every collector",
        description=(
            "Print one sample of every collector. Takes two samples INTERVAL seconds apart (default 1) and "
            "prints the second, so that rates (bytes/s, faults/s, ...) exist."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the Snapshot as JSON")
    p.add_argument(
        "--collectors",
        metavar="A,B",
        help="only these collectors (comma-separated; `perfpulse collectors` lists them)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between the two samples (0.1-60, default 1)",
    )
    p.add_argument("--all", action="store_true", help=f"show every series, not the first {SERIES_SHOWN}")
    p.set_defaults(func=run)


def parse_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--collectors needs at least one name")
    return names


async def take(sampler: Sampler) -> Snapshot:
    """Two ticks one interval apart; the second one."""
    try:
        await sampler.tick()
        await asyncio.sleep(sampler.interval)
        return await sampler.tick()
    finally:
        await sampler.aclose()


def run(args: argparse.Namespace) -> int:
    err = sys.stderr
    try:
        interval = check_interval(args.interval)
    except ValueError as exc:
        print(f"perfpulse snapshot: --interval: {exc}", file=err)
        return 2
    try:
        names = parse_names(args.collectors)
        collectors = build_collectors(enabled=names, include_disabled=False)
    except ValueError as exc:
        # The message names the known collectors when a name was wrong; an empty list gets them here.
        known = "" if "known:" in str(exc) else f"; known: {', '.join(sorted(registry()))}"
        print(f"perfpulse snapshot: {exc}{known}", file=err)
        return 2
    sampler = Sampler(MetricsAggregator(collectors), interval=interval)
    snapshot = asyncio.run(take(sampler))
    out = sys.stdout
    if args.json:
        out.write(dumps(snapshot.as_dict()).decode())
        out.write("\n")
    else:
        write_human(snapshot, {c.name: c for c in collectors}, out, show_all=args.all)
    out.flush()
    return 0


def dumps(obj: Any) -> bytes:
    """JSON the way perfpulse prints it: sorted keys, indented; NaN becomes null (orjson's rule)."""
    return orjson.dumps(
        obj,
        option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
        default=str,
    )


# -- human output -------------------------------------------------------------------------------------------
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def _bytes(v: float) -> str:
    i = 0
    while abs(v) >= 1024 and i < len(_BINARY) - 1:
        v /= 1024
        i += 1
    return f"{v:.0f} {_BINARY[i]}" if i == 0 else f"{v:.1f} {_BINARY[i]}"


_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"))


def _plain(v: float) -> str:
    for size, suffix in _SI:
        if abs(v) >= size:
            return f"{v / size:.2f} {suffix}"
    if v == int(v):
        return f"{int(v)}"
    return f"{v:.3g}" if abs(v) < 0.01 else f"{v:.2f}"


def format_value(value: float, unit: str) -> str:
    """A value with its unit, scaled for reading (ratios as %, bytes in binary multiples)."""
    if unit == "ratio":
        return f"{value * 100:.1f} %"
    if unit == "percent":
        return f"{value:.1f} %"
    if unit == "bytes":
        return _bytes(value)
    if unit == "bytes_per_second":
        return f"{_bytes(value)}/s"
    if unit == "seconds":
        return f"{value:.3f} s" if abs(value) < 1000 else f"{_plain(value)} s"
    if unit == "seconds_per_second":
        return f"{value:.3g} s/s"
    if unit == "per_second":
        return f"{_plain(value)}/s"
    if unit == "hertz":
        return f"{value / 1e9:.2f} GHz" if value >= 1e9 else f"{value / 1e6:.0f} MHz"
    if unit == "celsius":
        return f"{value:.1f} °C"
    if unit == "watts":
        return f"{value:.2f} W"
    if unit == "joules":
        return f"{value:.3g} J"
    return _plain(value)


def write_human(
    snapshot: Snapshot, collectors: dict[str, BaseCollector], out: TextIO, *, show_all: bool = False
) -> None:
    out.write(f"{snapshot.host}  interval {snapshot.interval:g} s  (second of two samples)\n")
    for name, meta in snapshot.meta.items():
        data = snapshot.data.get(name, {})
        if not meta.available:
            reason = data.get("reason", "not available here")
            out.write(f"\n{name}: unavailable: {reason}\n")
            if data.get("hint"):
                out.write(f"  hint: {data['hint']}\n")
            continue
        state = "stale" if meta.stale else ("error" if meta.error else "ok")
        out.write(f"\n{name}: {state}, {meta.duration_ms:.1f} ms\n")
        if meta.error:
            out.write(f"  error: {meta.error}\n")
        collector = collectors.get(name)
        if collector is None:
            continue
        units = {s.name: s.unit for s in collector.catalogue}
        by_metric: dict[str, list[Sample]] = defaultdict(list)
        for sample in collector.samples(data):
            by_metric[sample.name].append(sample)
        if not by_metric:
            out.write("  (no values this tick)\n")
            continue
        rows: list[tuple[str, str]] = []
        for metric, samples in by_metric.items():
            shown = samples if show_all else samples[:SERIES_SHOWN]
            for s in shown:
                rows.append((s.series_key, format_value(s.value, units.get(metric, "count"))))
            if len(shown) < len(samples):
                rows.append((f"{metric}{{...}}", f"{len(samples) - len(shown)} more (--all)"))
        width = min(max(len(k) for k, _ in rows), 70)
        for key, value in rows:
            out.write(f"  {key:<{width}}  {value}\n")
        for key, value in data.items():
            if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
                write_table(key, value, out, limit=None if show_all else TABLE_ROWS)


#: Rows shown of a table (top processes, ...) in the human output.
TABLE_ROWS = 5


def _cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if column.endswith("_bytes_per_second"):
            return f"{_bytes(value)}/s"
        return f"{value:.1f}"
    if isinstance(value, int) and column.endswith("_bytes"):
        return _bytes(value)
    return str(value)


def write_table(title: str, rows: list[dict[str, Any]], out: TextIO, *, limit: int | None) -> None:
    """A list of records (top processes by CPU, ...) as an aligned table of its scalar columns."""
    columns = [c for c, v in rows[0].items() if isinstance(v, str | int | float) or v is None]
    shown = rows if limit is None else rows[:limit]
    cells = [[_cell(c, r.get(c)) for c in columns] for r in shown]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    out.write(f"  {title}:\n")
    out.write("    " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("    " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")
    if len(shown) < len(rows):
        out.write(f"    ... {len(rows) - len(shown)} more (--all)\n")
