from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfpulse.procfs import ParseError
from perfpulse.procfs.pidstat import parse_cmdline, parse_io, parse_stat, parse_status_uid

# A line captured from this machine (`cat /proc/1/stat`), kept verbatim.
CAPTURED_STAT = (
    b"1 (process_api) S 0 0 0 0 -1 4194560 55357 1865496 0 705 61 343 3796 1522 10 -10 13 0 24 51154944 4587 "
    b"18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)


def test_captured_line() -> None:
    s = parse_stat(CAPTURED_STAT)
    assert (s.pid, s.comm, s.state, s.ppid) == (1, "process_api", "S", 0)
    assert (s.utime, s.stime, s.num_threads, s.starttime, s.rss) == (61, 343, 13, 24, 4587)


def test_own_stat_from_the_real_file() -> None:
    s = parse_stat(Path("/proc/self/stat").read_bytes())
    assert s.pid == os.getpid()
    assert s.state == "R"
    assert s.num_threads >= 1
    assert s.rss > 0


def test_comm_with_parens_and_spaces() -> None:
    # prctl(PR_SET_NAME) accepts any bytes: the name ends at the last ')'.
    line = CAPTURED_STAT.replace(b"(process_api)", b"(a) b (c))")
    s = parse_stat(line)
    assert s.comm == "a) b (c)"
    assert s.state == "S"
    assert s.num_threads == 13


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"1 (x) S 0",
        b"garbage",
        b"1 (x) S " + b"x " * 30,
        b"(x) S " + b"1 " * 30,
        b"1 (x) SS " + b"1 " * 30,
    ],
)
def test_malformed_stat(bad: bytes) -> None:
    with pytest.raises(ParseError):
        parse_stat(bad)


def test_io() -> None:
    data = (
        b"rchar: 323934931\nwchar: 323929600\nsyscr: 632687\nsyscw: 632675\n"
        b"read_bytes: 4096\nwrite_bytes: 323932160\ncancelled_write_bytes: 0\n"
    )
    io = parse_io(data)
    assert (io.rchar, io.wchar, io.read_bytes, io.write_bytes) == (323934931, 323929600, 4096, 323932160)
    with pytest.raises(ParseError, match="missing"):
        parse_io(b"rchar: 1\n")
    with pytest.raises(ParseError):
        parse_io(data.replace(b"4096", b"x"))


def test_own_io_and_status_from_the_real_files() -> None:
    io = parse_io(Path("/proc/self/io").read_bytes())
    assert io.rchar > 0
    assert parse_status_uid(Path("/proc/self/status").read_bytes()) == os.geteuid()


def test_status_uid_is_the_effective_one() -> None:
    assert parse_status_uid(b"Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n") == 0
    with pytest.raises(ParseError):
        parse_status_uid(b"Name:\tx\n")
    with pytest.raises(ParseError):
        parse_status_uid(b"Uid:\t1\n")


def test_cmdline() -> None:
    assert parse_cmdline(b"python3\0-c\0print(1)\0") == "python3 -c print(1)"
    assert parse_cmdline(b"") is None
    assert parse_cmdline(b"\xff\0") == "\ufffd"


@given(st.binary(max_size=400))
def test_stat_fuzz(data: bytes) -> None:
    try:
        s = parse_stat(data)
    except ParseError:
        return
    assert len(s.state) == 1
    assert min(s.utime, s.stime, s.rss, s.starttime) >= 0


@given(st.binary(max_size=300))
def test_io_and_status_fuzz(data: bytes) -> None:
    for parser in (parse_io, parse_status_uid, parse_cmdline):
        with contextlib.suppress(ParseError):
            parser(data)


@given(st.lists(st.text(max_size=20), max_size=5), st.text(max_size=30))
def test_stat_fuzz_structured(fields: list[str], comm: str) -> None:
    line = f"12 ({comm}) R {' '.join(fields)} " + " ".join(["1"] * 22)
    try:
        s = parse_stat(line.encode("utf-8", "surrogatepass"))
    except ParseError:
        return
    assert s.pid == 12
