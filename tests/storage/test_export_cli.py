"""`perfpulse export` against a real SQLite history file."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pytest
from gen import KEYS, T0, ticks

from perfpulse.cli import main
from perfpulse.storage.sqlite import SQLiteStore


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = SQLiteStore(tmp_path / "perfpulse.db", host="h1")
    store.write(list(ticks(900, interval_ms=1000)))
    store.close()
    return tmp_path


def test_export_csv_to_a_file_with_progress(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = data_dir / "out.csv"
    rc = main(
        [
            "export",
            "--data-dir",
            str(data_dir),
            "--host",
            "h1",
            "--series",
            KEYS[2],
            "--series",
            KEYS[0],
            "--from",
            str(T0 / 1000),
            "--to",
            str(T0 / 1000 + 900),
            "--tier",
            "raw",
            "-o",
            str(out),
        ]
    )
    assert rc == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0] == ["time", "host", "series", "value"] and len(rows) == 1 + 2 * 900
    assert rows[1][0].startswith("2026-01-01T00:00:00.00") and rows[1][3] == "8000000000.0"
    err = capsys.readouterr().err
    assert "100.0%" in err and "export [" in err


def test_export_json_rollups_to_stdout(data_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    rc = main(
        [
            "export",
            "--data-dir",
            str(data_dir),
            "--host",
            "h1",
            "--from",
            "2026-01-01T00:00:00Z",
            "--to",
            "2026-01-01T00:15:00Z",
            "--tier",
            "1m",
            "--format",
            "json",
            "--quiet",
        ]
    )
    assert rc == 0
    captured = capsysbinary.readouterr()
    doc = orjson.loads(captured.out)
    assert doc["tier"] == "1m" and len(doc["rows"]) == 14 * len(KEYS)  # the 15th minute is still open
    assert captured.err == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "someday"], "--from"),
        (["--series", "nope"], "unknown series"),
        (["--format", "csv", "--tier", "1m", "--from", "2010-01-01T00:00:00Z"], "limit"),
    ],
)
def test_export_errors_are_messages(
    data_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    rc = main(["export", "--data-dir", str(data_dir), "--host", "h1", "--quiet", *args])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_export_without_a_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--data-dir", str(tmp_path / "none")]) == 2
    assert "no history database" in capsys.readouterr().err
