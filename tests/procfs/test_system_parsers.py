"""The system-file parsers: against captured and constructed files, on malformed input, and fuzzed.

Property: for any input (arbitrary bytes or text) a parser returns a value or raises ParseError, never
another exception, because a collector catches exactly ParseError.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfpulse.procfs import ParseError
from perfpulse.procfs.cpuinfo import parse_cpuinfo_mhz
from perfpulse.procfs.diskstats import parse_diskstats
from perfpulse.procfs.inet_diag import parse_tcp_dump, tcp_dump_request
from perfpulse.procfs.keyvalue import parse_meminfo, parse_vmstat
from perfpulse.procfs.loadavg import parse_loadavg
from perfpulse.procfs.mounts import parse_mounts
from perfpulse.procfs.net import parse_net_dev, parse_tcp_states
from perfpulse.procfs.pressure import parse_pressure
from perfpulse.procfs.stat import parse_stat
from perfpulse.procfs.sysfs import parse_cpu_list, parse_hex, parse_int, parse_line, parse_word

MACHINES = Path(__file__).resolve().parents[1] / "fixtures" / "machines"
CAPTURED = MACHINES / "captured/t0/proc"
LARGE = MACHINES / "large/t0/proc"

PARSERS: list[Callable[[Any], Any]] = [
    parse_stat,
    parse_meminfo,
    parse_vmstat,
    parse_loadavg,
    parse_diskstats,
    parse_net_dev,
    parse_tcp_states,
    parse_pressure,
    parse_mounts,
    parse_cpuinfo_mhz,
    parse_int,
    parse_hex,
    parse_word,
    parse_line,
    parse_cpu_list,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_a_value_or_parse_error(parser: Callable[[Any], Any], data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parser(data)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@given(text=st.text(max_size=300))
def test_arbitrary_text_gives_a_value_or_parse_error(parser: Callable[[Any], Any], text: str) -> None:
    with contextlib.suppress(ParseError):
        parser(text)


@given(lines=st.lists(st.text(alphabet="cpu0123456789 \nintrctxsofq_-", max_size=40), max_size=8))
def test_stat_like_text_gives_a_value_or_parse_error(lines: list[str]) -> None:
    with contextlib.suppress(ParseError):
        parse_stat("\n".join(lines))


@given(data=st.binary(max_size=200))
def test_sock_diag_bytes_give_a_value_or_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError, OSError):  # OSError: a well-formed kernel error reply
        parse_tcp_dump(data, {})


@given(ticks=st.lists(st.integers(0, 2**63), min_size=10, max_size=10), cpus=st.integers(1, 8))
def test_stat_round_trip(ticks: list[int], cpus: int) -> None:
    text = "cpu  " + " ".join(map(str, ticks)) + "\n"
    text += "".join(f"cpu{i} " + " ".join(map(str, ticks)) + "\n" for i in range(cpus))
    st_ = parse_stat(text + "ctxt 5\n")
    assert st_.total.ticks == tuple(ticks) and len(st_.per_cpu) == cpus and st_.context_switches == 5


# -- captured and constructed files --------------------------------------------------------------------
def test_stat_files() -> None:
    cap = parse_stat((CAPTURED / "stat").read_bytes())
    assert len(cap.per_cpu) == 2 and cap.context_switches and cap.boot_time
    big = parse_stat((LARGE / "stat").read_bytes())
    assert len(big.per_cpu) == 64 and big.forks == 12_345_678 and big.procs_blocked == 2
    assert big.total["user"] == sum(c["user"] for c in big.per_cpu.values())


def test_old_kernel_stat_without_steal_and_guest() -> None:
    s = parse_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n")
    assert s.total.ticks == (1, 2, 3, 4, 0, 0, 0, 0, 0, 0) and s.total.total == 10 and s.forks is None


def test_stat_errors() -> None:
    for bad in (
        "",
        "cpu0 1 2 3 4\n",
        "cpu 1 2 x 4\n",
        "cpu 1 2\n",
        "cpu 1 2 3 4\ncpuX 1 2 3 4\n",
        "cpu -1 2 3 4",
    ):
        with pytest.raises(ParseError):
            parse_stat(bad)


def test_meminfo_files() -> None:
    m = parse_meminfo((LARGE / "meminfo").read_bytes())
    assert m["MemTotal"] == 512 << 30 and m["HugePages_Total"] == 1024 and m["Hugepagesize"] == 2 << 20
    assert parse_meminfo((CAPTURED / "meminfo").read_bytes())["MemTotal"] > 0
    for bad in ("MemTotal: 5 MB\n", "MemTotal 5 kB\n", "MemTotal: five kB\n", "\n"):
        with pytest.raises(ParseError):
            parse_meminfo(bad)


def test_vmstat_files() -> None:
    v = parse_vmstat((CAPTURED / "vmstat").read_bytes())
    assert {"pgfault", "pgmajfault", "pswpin", "pswpout"} <= set(v)
    with pytest.raises(ParseError):
        parse_vmstat("pgfault 1 2\n")


def test_loadavg() -> None:
    la = parse_loadavg(b"0.56 0.20 0.07 1/100 8734\n")
    assert (la.load1, la.load5, la.load15, la.runnable, la.entities, la.last_pid) == (
        0.56,
        0.2,
        0.07,
        1,
        100,
        8734,
    )
    for bad in (
        "0.5 0.2 0.1 1/2",
        "nan 0.2 0.1 1/2 3",
        "0.5 0.2 0.1 12 3",
        "-1 0 0 1/2 3",
        "1e400 0 0 1/2 3",
    ):
        with pytest.raises(ParseError):
            parse_loadavg(bad)


def test_diskstats_files_and_field_counts() -> None:
    cap = parse_diskstats((CAPTURED / "diskstats").read_bytes())
    assert any(not n.startswith("loop") for n in cap)
    big = parse_diskstats((LARGE / "diskstats").read_bytes())
    assert big["dm-0"].major == 253 and big["nvme0n1p2"].flushes is not None
    old = parse_diskstats("   8       0 sda 1 2 3 4 5 6 7 8 9 10 11\n")  # before 4.18: no discard fields
    assert old["sda"].weighted_io_ms == 11 and old["sda"].discards is None and old["sda"].flush_ms is None
    assert parse_diskstats("8 0 sda 1 2 3 4 5 6 7 8 -1 10 11\n")["sda"].in_flight == 0
    for bad in ("8 0 sda 1 2 3\n", "8 0 sda 1 2 3 4 5 6 7 8 9 10 x\n", "8 0 sda -1 2 3 4 5 6 7 8 9 10 11\n"):
        with pytest.raises(ParseError):
            parse_diskstats(bad)


def test_net_dev() -> None:
    devs = parse_net_dev((LARGE / "net/dev").read_bytes())
    assert set(devs) == {"lo", "eno1", "eno2", "ens1f0", "ens1f1", "bond0", "br0"}
    wide = "Inter-|\n face |\nverylongname0:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
    d = parse_net_dev(wide)["verylongname0"]  # the name touches the first number
    assert (d.rx_bytes, d.rx_packets, d.rx_errors, d.rx_drops, d.tx_bytes, d.tx_drops) == (1, 2, 3, 4, 9, 12)
    for bad in ("eth0: 1 2 3\n", "eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n", ": 1\n"):
        with pytest.raises(ParseError):
            parse_net_dev(bad)


def test_tcp_states() -> None:
    counts = parse_tcp_states((LARGE / "net/tcp").read_bytes())
    parse_tcp_states((LARGE / "net/tcp6").read_bytes(), counts)
    assert counts["established"] == 420 and counts["listen"] == 24 and counts["time_wait"] == 180
    assert parse_tcp_states(b"")["listen"] == 0
    with pytest.raises(ParseError):
        parse_tcp_states("  0: 0100007F:1F90 00000000:0000 0D 0 0\n")  # 0x0D is no TCP state


def test_pressure() -> None:
    p = parse_pressure((LARGE / "pressure/irq").read_bytes())
    assert set(p) == {"full"} and p["full"].total_us == 3_333_333
    io = parse_pressure((CAPTURED / "pressure/io").read_bytes())
    assert set(io) == {"some", "full"}
    for bad in (
        "",
        "some avg10=1 avg60=2 avg300=3\n",
        "most avg10=1 avg60=2 avg300=3 total=4\n",
        "some avg10=1 avg60=2 avg300=3 totl=4\n",
        "some avg10=inf avg60=2 avg300=3 total=4\n",
    ):
        with pytest.raises(ParseError):
            parse_pressure(bad)  # fmt: skip


def test_mounts_unescape_octal() -> None:
    ms = parse_mounts((LARGE / "mounts").read_bytes())
    assert "/srv/secure vault" in [m.mountpoint for m in ms]
    raw = b"/dev/sda1 /mnt/caf\\303\\251\\011tab ext4 rw,noatime 0 0\n"
    (m,) = parse_mounts(raw)
    assert m.mountpoint == "/mnt/café\ttab" and m.options == ("rw", "noatime")
    (weird,) = parse_mounts(b"src /mnt/\\377 ext4 rw 0 0\n")  # not UTF-8: exact bytes survive
    assert weird.mountpoint.encode("utf-8", "surrogateescape") == b"/mnt/\xff"
    for bad in (b"only two\n", b"src relative ext4 rw 0 0\n", b"src /mnt/\\000 ext4 rw 0 0\n"):
        with pytest.raises(ParseError):
            parse_mounts(bad)


def test_cpuinfo_mhz() -> None:
    assert len(parse_cpuinfo_mhz((LARGE / "cpuinfo").read_bytes())) == 64
    assert parse_cpuinfo_mhz("processor\t: 0\nBogoMIPS\t: 50.00\n") == {}  # arm64: no MHz line
    with pytest.raises(ParseError):
        parse_cpuinfo_mhz("cpu MHz : 1000\n")


def test_sysfs_values() -> None:
    assert parse_int(b"25000\n") == 25000 and parse_int("-1\n") == -1
    assert parse_hex(b"0x1003\n") == 0x1003
    assert parse_word(b"up\n") == "up" and parse_line(b"Package id 0\n") == "Package id 0"
    assert parse_cpu_list(b"0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11] and parse_cpu_list(b"\n") == []
    for func, bad in (
        (parse_int, "1_000"),
        (parse_int, "١٢"),
        (parse_hex, "0xZZ"),
        (parse_word, "a b"),
        (parse_cpu_list, "3-1"),
        (parse_cpu_list, "0-99999999"),
    ):
        with pytest.raises(ParseError):
            func(bad)  # fmt: skip


def test_sock_diag_messages() -> None:
    req = tcp_dump_request(socket.AF_INET, seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    assert length == len(req) == 72 and kind == 20 and flags & 0x300 and seq == 7

    def msg(kind: int, body: bytes) -> bytes:
        raw = struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body
        return raw + b"\0" * (-len(raw) % 4)

    counts: dict[str, int] = {}
    assert (
        parse_tcp_dump(msg(20, bytes([2, 1]) + bytes(70)) + msg(20, bytes([2, 10]) + bytes(70)), counts)
        is False
    )
    assert counts == {"established": 1, "listen": 1}
    assert parse_tcp_dump(msg(3, struct.pack("=i", 0)), counts) is True
    with pytest.raises(OSError):
        parse_tcp_dump(msg(2, struct.pack("=i", -97)), counts)  # EAFNOSUPPORT
    with pytest.raises(ParseError):
        parse_tcp_dump(msg(20, bytes([2, 99]) + bytes(70)), counts)
