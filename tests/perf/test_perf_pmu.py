"""sysfs PMU discovery against the fixture trees in tests/fixtures/pmu (see its SOURCE) and this machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perfpulse.perf.pmu import (
    FormatField,
    PmuFormatError,
    core_pmus,
    discover_pmus,
    format_cpulist,
    online_cpus,
    parse_cpulist,
    parse_format,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pmu"


def test_parse_cpulist_examples() -> None:
    assert parse_cpulist("0-3,8") == (0, 1, 2, 3, 8)
    assert parse_cpulist("0\n") == (0,)
    assert parse_cpulist("") == ()
    assert parse_cpulist(" 0,28 ") == (0, 28)
    assert parse_cpulist("4-5,0-1,1") == (0, 1, 4, 5)


@pytest.mark.parametrize("bad", ["a", "3-1", "-1", "1-", "1,,2", "0-x", "1-2-3", "0-99999999"])
def test_parse_cpulist_rejects(bad: str) -> None:
    with pytest.raises(PmuFormatError):
        parse_cpulist(bad)


@given(st.sets(st.integers(min_value=0, max_value=4096), max_size=64))
def test_cpulist_round_trip(cpus: set[int]) -> None:
    assert parse_cpulist(format_cpulist(cpus)) == tuple(sorted(cpus))


@given(st.text(max_size=40))
def test_parse_cpulist_never_crashes(text: str) -> None:
    try:
        out = parse_cpulist(text)
    except PmuFormatError:
        return
    assert list(out) == sorted(set(out))


def test_parse_format() -> None:
    f = parse_format("event", "config:0-7,21\n")
    assert f == FormatField("event", "config", ((0, 7), (21, 21)))
    assert f.width == 9
    assert f.encode(0x1FF) == 0xFF | (1 << 21)
    assert parse_format("ldlat", "config1:0-15").word == "config1"
    assert parse_format("x", "config3:63").ranges == ((63, 63),)


@pytest.mark.parametrize(
    "bad", ["config:", "config4:0", "event:0-7", "config:7-0", "config:0-64", "config:a"]
)
def test_parse_format_rejects(bad: str) -> None:
    with pytest.raises(PmuFormatError):
        parse_format("t", bad)


def test_encode_rejects_values_that_do_not_fit() -> None:
    f = parse_format("umask", "config:8-15")
    assert f.encode(0xFF) == 0xFF00
    with pytest.raises(ValueError, match="does not fit"):
        f.encode(0x100)
    with pytest.raises(ValueError):
        f.encode(-1)


_ranges = st.lists(
    st.tuples(st.integers(0, 63), st.integers(0, 15)).map(lambda t: (t[0], min(63, t[0] + t[1]))),
    min_size=1,
    max_size=4,
).filter(
    lambda rs: all(  # non-overlapping, as real formats are
        a[1] < b[0] or b[1] < a[0] for i, a in enumerate(rs) for b in rs[i + 1 :]
    )
)


@given(_ranges, st.data())
def test_format_encode_decode_round_trip(ranges: list[tuple[int, int]], data: st.DataObject) -> None:
    text = "config:" + ",".join(f"{lo}-{hi}" if hi != lo else str(lo) for lo, hi in ranges)
    field = parse_format("t", text)
    value = data.draw(st.integers(0, field.max_value))
    word = field.encode(value)
    assert field.decode(word) == value
    allowed = sum(((1 << (hi - lo + 1)) - 1) << lo for lo, hi in ranges)
    assert word & ~allowed == 0


def test_hybrid_fixture() -> None:
    pmus = discover_pmus(FIXTURES / "hybrid")
    core = pmus["cpu_core"]
    atom = pmus["cpu_atom"]
    assert (core.type, atom.type) == (4, 10)
    assert core.cpus == tuple(range(8)) and atom.cpus == tuple(range(8, 16))
    assert core.is_core and atom.is_core and not core.is_uncore
    assert [p.name for p in core_pmus(pmus)] == ["cpu_atom", "cpu_core"]
    assert core.formats["event"].ranges == ((0, 7),)
    assert core.formats["ldlat"].word == "config1"
    assert core.events["mem-loads"].terms == "event=0xd0,umask=0x5,ldlat=3"
    assert core.caps["pmu_name"] == "alderlake_hybrid"
    power = pmus["power"]
    assert power.cpumask == (0,) and power.is_uncore and not power.is_core
    pkg = power.events["energy-pkg"]
    assert pkg.scale == pytest.approx(2.3283064365386962890625e-10)
    assert pkg.unit == "Joules"
    assert "energy-pkg.scale" not in power.events
    imc = pmus["uncore_imc_0"].events["cas_count_read"]
    assert (imc.scale, imc.unit) == (6.103515625e-5, "MiB")
    assert pmus["software"].type == 1 and pmus["software"].cpumask is None
    assert online_cpus(FIXTURES / "hybrid") == tuple(range(16))


def test_server_and_amd_fixtures() -> None:
    server = discover_pmus(FIXTURES / "server")
    assert server["power"].cpumask == (0, 28)
    assert sorted(n for n in server if n.startswith("uncore_imc_")) == [f"uncore_imc_{i}" for i in range(4)]
    assert server["cpu"].cpus is None and server["cpu"].is_core
    amd = discover_pmus(FIXTURES / "amd")
    assert amd["cpu"].formats["event"].ranges == ((0, 7), (32, 35))


def test_arm_fixture_core_pmus() -> None:
    pmus = discover_pmus(FIXTURES / "arm")
    assert [p.name for p in core_pmus(pmus)] == ["armv8_cortex_a53", "armv8_cortex_a72"]
    assert pmus["armv8_cortex_a72"].cpus == (4, 5)


def test_vm_fixture_has_no_core_pmu() -> None:
    pmus = discover_pmus(FIXTURES / "vm")
    assert core_pmus(pmus) == []
    assert pmus["msr"].events["tsc"].terms == "event=0x00"


def test_missing_root_gives_nothing(tmp_path: Path) -> None:
    assert discover_pmus(tmp_path) == {}


def test_broken_entries_are_skipped(tmp_path: Path) -> None:
    base = tmp_path / "bus" / "event_source" / "devices"
    (base / "good" / "format").mkdir(parents=True)
    (base / "good" / "type").write_text("42\n")
    (base / "good" / "format" / "event").write_text("config:0-7\n")
    (base / "good" / "format" / "weird").write_text("nonsense\n")
    (base / "good" / "cpumask").write_text("garbage\n")
    (base / "notype").mkdir()
    (base / "badtype").mkdir()
    (base / "badtype" / "type").write_text("x\n")
    pmus = discover_pmus(tmp_path)
    assert list(pmus) == ["good"]
    assert list(pmus["good"].formats) == ["event"]
    assert pmus["good"].cpumask is None


def test_this_machine() -> None:
    """The real sysfs: a software PMU of type 1 exists on every Linux with perf events."""
    pmus = discover_pmus()
    assert pmus["software"].type == 1
    assert online_cpus()
