"""`perfpulse collectors`: which collectors exist, which can read their source here, and if not, why."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from perfpulse.collectors.base import BaseCollector
from perfpulse.commands.snapshot import dumps
from perfpulse.sampler import build_collectors


def register(subparsers: Any) -> None:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "collectors",
        help="list the collectors, whether each is available here, and why not",
        description=(
            "List every collector, whether its source can be read on this machine, and if not, why and "
            "what to do about it."
        ),
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON (with each metric catalogue)")
    p.set_defaults(func=run)


def describe_all() -> list[dict[str, Any]]:
    collectors: list[BaseCollector] = build_collectors()
    try:
        return [c.describe() for c in collectors]
    finally:
        for c in collectors:
            c.close()


def run(args: argparse.Namespace) -> int:
    rows = describe_all()
    out = sys.stdout
    if args.json:
        out.write(dumps(rows).decode())
        out.write("\n")
        return 0
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        count = len(r["catalogue"])
        if r["available"]:
            out.write(f"{r['name']:<{width}}  available    {count} metrics\n")
        else:
            out.write(f"{r['name']:<{width}}  unavailable  {r['reason']}\n")
            if r.get("hint"):
                out.write(f"{'':<{width}}               hint: {r['hint']}\n")
    return 0
