"""The `perfpulse` command. Each subcommand lives in ``perfpulse.commands.<name>`` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` (the exit status)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from perfpulse import __version__

#: Subcommand modules under perfpulse.commands, in the order `perfpulse --help` lists them.
COMMANDS: tuple[str, ...] = ("check", "stat", "snapshot", "collectors", "serve", "user", "export")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="perfpulse",
        description="Real-time Linux performance monitor: system metrics and hardware counters.",
    )
    parser.add_argument("--version", action="version", version=f"perfpulse {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"perfpulse.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `perfpulse stat ... | head`: the reader went away; that is not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
