"""The dashboard's own checks, run from the Python suite so that `make test` covers them: the Vitest unit
tests (unit formatting, ring buffers, the reconnect policy, history URL state) and svelte-check (the
TypeScript types of every component)."""

from __future__ import annotations

import subprocess

from dashboard_support import FRONTEND, ensure_node_modules


def run_npm(*args: str) -> subprocess.CompletedProcess[str]:
    npm = ensure_node_modules()
    return subprocess.run([npm, *args], cwd=FRONTEND, capture_output=True, text=True, timeout=300)


def test_vitest_unit_tests_pass() -> None:
    r = run_npm("test", "--", "--reporter=dot")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "passed" in r.stdout


def test_svelte_check_finds_no_type_errors() -> None:
    r = run_npm("run", "check", "--", "--output", "machine", "--fail-on-warnings")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " 0 ERRORS 0 WARNINGS" in r.stdout
