"""`perfpulse snapshot` and `perfpulse collectors`, run against this machine's real /proc and /sys."""

from __future__ import annotations

import argparse
import json

import pytest

from perfpulse.collectors.base import registry
from perfpulse.commands import collectors as collectors_cmd
from perfpulse.commands import snapshot as snapshot_cmd
from perfpulse.commands.snapshot import format_value


def run(argv: list[str]) -> int:
    """Parse and run one subcommand the way `perfpulse` does, without importing the other commands."""
    parser = argparse.ArgumentParser(prog="perfpulse")
    sub = parser.add_subparsers(dest="command")
    snapshot_cmd.register(sub)
    collectors_cmd.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_snapshot_json_is_the_second_of_two_ticks(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["snapshot", "--json", "--collectors", "memory", "--interval", "0.2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seq"] == 2 and doc["interval"] == 0.2
    assert list(doc["collectors"]) == ["memory"]
    mem = doc["collectors"]["memory"]
    assert mem["meta"]["error"] is None and mem["meta"]["stale"] is False
    assert mem["data"], "memory collector returned nothing on a Linux machine"


def test_snapshot_human_output_names_each_collector(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["snapshot", "--collectors", "memory,cpu", "--interval", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "memory: ok" in out and "cpu: ok" in out
    assert "cpu_busy_ratio" in out and "%" in out


def test_unknown_collector_exits_2_with_the_known_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["snapshot", "--collectors", "cpu,nosuch"]) == 2
    err = capsys.readouterr().err
    assert "nosuch" in err
    for name in registry():
        assert name in err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["snapshot", "--collectors", " , "], "at least one"),
        (["snapshot", "--interval", "0.01"], "between 0.1 and 60"),
    ],
)
def test_bad_arguments_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(argv) == 2
    assert needle in capsys.readouterr().err


def test_help_says_two_samples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(["snapshot", "--help"])
    assert "two samples" in capsys.readouterr().out


def test_collectors_lists_every_registered_collector(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["collectors", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(registry())
    for r in rows:
        assert isinstance(r["available"], bool)
        assert (r["reason"] is None) == r["available"]
    assert any(r["name"] == "memory" and r["available"] for r in rows)

    assert run(["collectors"]) == 0
    text = capsys.readouterr().out
    for r in rows:
        assert r["name"] in text
        if not r["available"]:
            assert r["reason"] in text


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.5, "ratio", "50.0 %"),
        (3 * 1024**3, "bytes", "3.0 GiB"),
        (512, "bytes_per_second", "512 B/s"),
        (2.4e9, "hertz", "2.40 GHz"),
        (800e6, "hertz", "800 MHz"),
        (42, "count", "42"),
        (1234.5, "per_second", "1234.50/s"),
        (2.5e9, "per_second", "2.50 G/s"),
        (1425268879, "count", "1.43 G"),
        (0.5, "seconds", "0.500 s"),
    ],
)
def test_format_value(value: float, unit: str, text: str) -> None:
    assert format_value(value, unit) == text


def test_tables_of_records_are_printed() -> None:
    import io

    from perfpulse.commands.snapshot import write_table

    out = io.StringIO()
    rows = [{"pid": i, "name": f"p{i}", "rss_bytes": 2048 * i, "cpu_percent": 1.25 * i} for i in range(8)]
    write_table("top_cpu", rows, out, limit=5)
    lines = out.getvalue().splitlines()
    assert lines[0] == "  top_cpu:"
    assert lines[1].split() == ["pid", "name", "rss_bytes", "cpu_percent"]
    assert lines[3].split() == ["1", "p1", "2.0", "KiB", "1.2"]
    assert lines[-1].strip() == "... 3 more (--all)"
