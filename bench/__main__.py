"""Run every benchmark (`python -m bench`, what `make bench` does); add a module to MODULES to include it."""

from __future__ import annotations

import importlib
import sys

#: Benchmark modules under bench/, each with a ``main() -> None`` that prints its markdown section.
MODULES: tuple[str, ...] = (
    "perf_read",
    "tick_cost",
    "collector_costs",
    "processes_scan",
    "history",
    "ws_fanout",
    "dashboard",
)


def main() -> int:
    failed = 0
    for name in MODULES:
        print(f"<!-- bench.{name} -->", flush=True)
        try:
            importlib.import_module(f"bench.{name}").main()
        except Exception as exc:  # one broken bench must not hide the others' numbers
            failed += 1
            print(f"bench.{name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
