"""contrib/perfpulse.service: valid for systemd, and as locked down as it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from support import require_tool

UNIT = Path(__file__).resolve().parents[2] / "contrib" / "perfpulse.service"


def directives(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_unit_runs_unprivileged_with_only_cap_perfmon() -> None:
    d = directives(UNIT.read_text())
    assert d["User"] == ["perfpulse"]
    assert d["AmbientCapabilities"] == ["CAP_PERFMON"]
    assert d["CapabilityBoundingSet"] == ["CAP_PERFMON"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "perfpulse",
    }.items():
        assert d[key] == [value], key
    assert "perf_event_open" in d["SystemCallFilter"][0]
    assert set(d["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert "--host 127.0.0.1" in d["ExecStart"][0]


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's perfpulse (verify checks the binary exists)."""
    exe = Path(sys.executable).with_name("perfpulse")
    text = UNIT.read_text().replace("/usr/local/bin/perfpulse", str(exe))
    unit = tmp_path / "perfpulse.service"
    unit.write_text(text)
    return unit


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    unit = _installed_copy(tmp_path)
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # verify reports unknown or misspelt directives as warnings on stderr, still exiting 0.
    problems = [line for line in r.stderr.splitlines() if "perfpulse.service" in line]
    assert problems == []


def test_systemd_analyze_verify_catches_a_typo(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    tool = require_tool("systemd-analyze")
    unit = _installed_copy(tmp_path)
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilegez="))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert any("NoNewPrivilegez" in line for line in r.stderr.splitlines())


def test_exposure_score_is_low(tmp_path: Path) -> None:
    tool = require_tool("systemd-analyze")
    unit = _installed_copy(tmp_path)
    r = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", r.stdout + r.stderr)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.5
