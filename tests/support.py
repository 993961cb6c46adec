"""Test helpers shared by the suite.

``require(ok, what)`` skips a test that needs a real part this machine lacks (root, PostgreSQL, Chromium,
linux-perf). Under ``PERFPULSE_STRICT=1`` (what `.ci/run` sets) such a skip is a failure instead: CI installs
every real part, so a missing one there is a broken CI script, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil

import pytest

STRICT = os.environ.get("PERFPULSE_STRICT", "") not in ("", "0")


def require(ok: object, what: str) -> None:
    if ok:
        return
    if STRICT:
        pytest.fail(f"PERFPULSE_STRICT=1 and a real part is missing: {what}")
    pytest.skip(what)


def require_root() -> None:
    require(os.geteuid() == 0, "needs root for the real syscall path")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path, f"needs {name} on PATH")
    assert path is not None
    return path
