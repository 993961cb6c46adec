"""Event names to attrs: generic tables, the cache matrix, PMU terms through sysfs formats, modifiers.

PMU-specific cases use the fixture sysfs trees in tests/fixtures/pmu (hybrid laptop, two-socket server,
AMD, Arm), since this VM has no core or uncore PMU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perfpulse.perf import _abi
from perfpulse.perf.events import (
    CACHE_EVENTS,
    EventSpec,
    EventSyntaxError,
    UnknownEventError,
    parse_event,
    resolve_events,
)
from perfpulse.perf.pmu import discover_pmus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pmu"
HYBRID = discover_pmus(FIXTURES / "hybrid")
SERVER = discover_pmus(FIXTURES / "server")
AMD = discover_pmus(FIXTURES / "amd")
ARM = discover_pmus(FIXTURES / "arm")
VM = discover_pmus(FIXTURES / "vm")


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("cycles", 0),
        ("cpu-cycles", 0),
        ("instructions", 1),
        ("cache-references", 2),
        ("cache-misses", 3),
        ("branches", 4),
        ("branch-instructions", 4),
        ("branch-misses", 5),
        ("bus-cycles", 6),
        ("stalled-cycles-frontend", 7),
        ("idle-cycles-frontend", 7),
        ("stalled-cycles-backend", 8),
        ("ref-cycles", 9),
    ],
)
def test_hardware_names(name: str, config: int) -> None:
    spec = parse_event(name, VM)
    assert (spec.type, spec.config, spec.name) == (0, config, name)
    assert spec.is_hardware and not spec.is_software
    assert not (spec.exclude_user or spec.exclude_kernel or spec.exclude_hv)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("cpu-clock", 0),
        ("task-clock", 1),
        ("page-faults", 2),
        ("faults", 2),
        ("context-switches", 3),
        ("cs", 3),
        ("cpu-migrations", 4),
        ("migrations", 4),
        ("minor-faults", 5),
        ("major-faults", 6),
        ("alignment-faults", 7),
        ("emulation-faults", 8),
        ("dummy", 9),
        ("bpf-output", 10),
        ("cgroup-switches", 11),
    ],
)
def test_software_names(name: str, config: int) -> None:
    spec = parse_event(name, VM)
    assert (spec.type, spec.config) == (1, config)
    assert spec.is_software and spec.group_key == "software"


def test_cache_matrix_is_perf_lists() -> None:
    # The names `perf list` prints under "Hardware cache event" (tools/perf/util/evsel.c tables).
    assert sorted(CACHE_EVENTS) == sorted(
        [
            "L1-dcache-loads",
            "L1-dcache-load-misses",
            "L1-dcache-stores",
            "L1-dcache-store-misses",
            "L1-dcache-prefetches",
            "L1-dcache-prefetch-misses",
            "L1-icache-loads",
            "L1-icache-load-misses",
            "L1-icache-prefetches",
            "L1-icache-prefetch-misses",
            "LLC-loads",
            "LLC-load-misses",
            "LLC-stores",
            "LLC-store-misses",
            "LLC-prefetches",
            "LLC-prefetch-misses",
            "dTLB-loads",
            "dTLB-load-misses",
            "dTLB-stores",
            "dTLB-store-misses",
            "dTLB-prefetches",
            "dTLB-prefetch-misses",
            "iTLB-loads",
            "iTLB-load-misses",
            "branch-loads",
            "branch-load-misses",
            "node-loads",
            "node-load-misses",
            "node-stores",
            "node-store-misses",
            "node-prefetches",
            "node-prefetch-misses",
        ]
    )


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("L1-dcache-loads", 0x000000),
        ("L1-dcache-load-misses", 0x010000),
        ("L1-dcache-stores", 0x000100),
        ("L1-icache-load-misses", 0x010001),
        ("LLC-loads", 0x000002),
        ("LLC-load-misses", 0x010002),
        ("LLC-store-misses", 0x010102),
        ("LLC-prefetches", 0x000202),
        ("dTLB-loads", 0x000003),
        ("dTLB-load-misses", 0x010003),
        ("iTLB-load-misses", 0x010004),
        ("branch-loads", 0x000005),
        ("branch-load-misses", 0x010005),
        ("node-load-misses", 0x010006),
        # perf's aliases
        ("l1d-load-miss", 0x010000),
        ("L1-data-read-access", 0x000000),
        ("L2-loads", 0x000002),
        ("d-tlb-load-misses", 0x010003),
        ("LLC-speculative-read-misses", 0x010202),
        ("LLC", 0x000002),
        ("LLC-misses", 0x010002),
    ],
)
def test_cache_names(name: str, config: int) -> None:
    spec = parse_event(name, VM)
    assert (spec.type, spec.config) == (_abi.PERF_TYPE_HW_CACHE, config)


@pytest.mark.parametrize("name", ["L1-icache-stores", "iTLB-stores", "branch-prefetches", "LLC-loads-loads"])
def test_cache_ops_perf_does_not_list_are_unknown(name: str) -> None:
    with pytest.raises(UnknownEventError):
        parse_event(name, VM)


@pytest.mark.parametrize(
    ("mods", "user", "kernel", "hv"),
    [
        ("u", False, True, True),
        ("k", True, False, True),
        ("h", True, True, False),
        ("uk", False, False, True),
        ("ku", False, False, True),
        ("ukh", False, False, False),
    ],
)
def test_modifiers(mods: str, user: bool, kernel: bool, hv: bool) -> None:
    spec = parse_event(f"cycles:{mods}", VM)
    assert (spec.exclude_user, spec.exclude_kernel, spec.exclude_hv) == (user, kernel, hv)
    assert spec.name == f"cycles:{mods}"
    attr = spec.to_attr()
    assert (attr.exclude_user, attr.exclude_kernel, attr.exclude_hv) == (int(user), int(kernel), int(hv))


def test_unsupported_modifier_is_a_clear_error() -> None:
    with pytest.raises(EventSyntaxError, match=r"unsupported modifier.*'p'"):
        parse_event("cycles:pp", VM)


def test_raw() -> None:
    spec = parse_event("r01c2", VM)
    assert (spec.type, spec.config) == (_abi.PERF_TYPE_RAW, 0x1C2)
    assert parse_event("r1a8:u", VM).exclude_kernel


def test_unknown_suggests_close_matches() -> None:
    with pytest.raises(UnknownEventError) as info:
        parse_event("instrutions", VM)
    assert info.value.suggestions[0] == "instructions"
    assert "did you mean instructions" in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(UnknownEventError) as info:
        parse_event("L1-dcache-load-mises", VM)
    assert "L1-dcache-load-misses" in info.value.suggestions
    with pytest.raises(UnknownEventError) as info:
        parse_event("energy-pk", HYBRID)
    assert "power/energy-pkg/" in info.value.suggestions


def test_garbage_is_an_error_not_a_crash() -> None:
    for bad in ["", "   ", "cpu/", "/x/", "cycles:", "a/b/c/d"]:
        with pytest.raises(ValueError):
            parse_event(bad, VM)
    with pytest.raises(TypeError):
        parse_event(3, VM)  # type: ignore[arg-type]


def test_pmu_terms_through_format() -> None:
    spec = parse_event("cpu/event=0x3c,umask=0x1/", SERVER)
    assert (spec.type, spec.config, spec.pmu) == (4, 0x013C, "cpu")
    spec = parse_event("cpu/event=0xc0,inv,cmask=1,edge/u", SERVER)
    assert spec.config == 0xC0 | (1 << 23) | (1 << 24) | (1 << 18)
    assert spec.exclude_kernel and not spec.exclude_user
    spec = parse_event("cpu/event=0xd0,umask=0x5,ldlat=30/", SERVER)
    assert spec.config1 == 30
    spec = parse_event("cpu/config=0x1234,config1=5,name=mine/", SERVER)
    assert (spec.config, spec.config1, spec.name) == (0x1234, 5, "mine")


def test_amd_split_event_code() -> None:
    spec = parse_event("cpu/event=0x1c0,umask=0x2/", AMD)
    assert spec.config == 0xC0 | (0x1 << 32) | (0x2 << 8)


def test_sysfs_alias_with_extra_terms() -> None:
    spec = parse_event("cpu_core/mem-loads,ldlat=50/", HYBRID)
    assert spec.config == 0x05D0 and spec.config1 == 50
    assert spec.cpus == tuple(range(8)) and spec.pmu == "cpu_core"


def test_pmu_term_errors() -> None:
    with pytest.raises(EventSyntaxError, match=r"no term 'umsk'.*umask"):
        parse_event("cpu/event=0x3c,umsk=1/", SERVER)
    with pytest.raises(EventSyntaxError, match="does not fit"):
        parse_event("cpu/umask=0x100/", SERVER)
    with pytest.raises(EventSyntaxError, match="not a number"):
        parse_event("cpu/event=zz/", SERVER)
    with pytest.raises(UnknownEventError, match="no PMU named 'cpux'"):
        parse_event("cpux/cycles/", SERVER)
    with pytest.raises(UnknownEventError, match="has no event 'cas_count_red'") as info:
        parse_event("uncore_imc_0/cas_count_red/", SERVER)
    assert info.value.suggestions[0] == "uncore_imc_0/cas_count_read/"


def test_rapl_scale_unit_and_cpumask() -> None:
    spec = parse_event("power/energy-pkg/", SERVER)
    assert (spec.type, spec.config, spec.unit) == (11, 2, "Joules")
    assert spec.scale == pytest.approx(2.3283064365386962890625e-10)
    assert spec.cpus == (0, 28) and spec.uncore and not spec.is_hardware
    assert spec.group_key == "pmu:power"
    with pytest.raises(EventSyntaxError, match="whole socket"):
        parse_event("power/energy-pkg/u", SERVER)


def test_uncore_instances_expand() -> None:
    specs = resolve_events(["uncore_imc/cas_count_read/"], SERVER)
    assert [s.name for s in specs] == [f"uncore_imc_{i}/cas_count_read/" for i in range(4)]
    assert [s.type for s in specs] == [20, 21, 22, 23]
    assert all(s.config == 0x0F04 and s.cpus == (0, 28) and s.unit == "MiB" for s in specs)
    with pytest.raises(UnknownEventError, match="matches 4 PMUs"):
        parse_event("uncore_imc/cas_count_read/", SERVER)


def test_hybrid_generic_events_expand_with_extended_type() -> None:
    specs = resolve_events(["cycles", "LLC-load-misses:u", "task-clock"], HYBRID)
    by_name = {s.name: s for s in specs}
    assert list(by_name) == [
        "cpu_atom/cycles/",
        "cpu_core/cycles/",
        "cpu_atom/LLC-load-misses/u",
        "cpu_core/LLC-load-misses/u",
        "task-clock",
    ]
    core = by_name["cpu_core/cycles/"]
    atom = by_name["cpu_atom/cycles/"]
    assert (core.type, core.config) == (_abi.PERF_TYPE_HARDWARE, 4 << 32)
    assert (atom.type, atom.config) == (_abi.PERF_TYPE_HARDWARE, 10 << 32)
    assert core.cpus == tuple(range(8)) and atom.cpus == tuple(range(8, 16))
    assert core.group_key != atom.group_key
    llc = by_name["cpu_core/LLC-load-misses/u"]
    assert (llc.type, llc.config) == (_abi.PERF_TYPE_HW_CACHE, (4 << 32) | 0x010002)
    assert llc.exclude_kernel and not llc.exclude_user
    assert by_name["task-clock"].cpus is None


def test_non_hybrid_generic_events_are_not_expanded() -> None:
    specs = resolve_events(["cycles", "instructions"], SERVER)
    assert [(s.name, s.config) for s in specs] == [("cycles", 0), ("instructions", 1)]
    # On a single core PMU, cpu/cycles/ is the legacy event without an extended type.
    spec = parse_event("cpu/cycles/", SERVER)
    assert (spec.type, spec.config) == (0, 0)


def test_arm_big_little_expands() -> None:
    specs = resolve_events(["instructions"], ARM)
    assert [(s.name, s.config >> 32, s.cpus) for s in specs] == [
        ("armv8_cortex_a53/instructions/", 7, (0, 1, 2, 3)),
        ("armv8_cortex_a72/instructions/", 8, (4, 5)),
    ]
    spec = parse_event("armv8_cortex_a72/inst_retired/", ARM)
    assert (spec.type, spec.config, spec.cpus) == (8, 8, (4, 5))


def test_user_only_variant() -> None:
    spec = parse_event("page-faults", VM).with_user_only()
    assert spec.exclude_kernel and spec.exclude_hv and not spec.exclude_user
    assert spec.name == "page-faults"


def test_to_attr_sets_identity_only() -> None:
    spec = EventSpec(name="x", type=7, config=1, config1=2, config2=3, config3=4)
    attr = spec.to_attr()
    assert (attr.type, attr.config, attr.config1, attr.config2, attr.config3) == (7, 1, 2, 3, 4)
    assert attr.flags == 0 and attr.read_format == 0 and attr.size == 136


def test_real_sysfs_default() -> None:
    """With no pmus given, this machine's sysfs is read: msr/tsc/ exists on this x86 VM."""
    assert parse_event("task-clock").config == 1
    if "msr" in discover_pmus():
        assert parse_event("msr/tsc/").pmu == "msr"


def test_raw_codes_on_named_and_hybrid_pmus() -> None:
    spec = parse_event("cpu/r01c2/", SERVER)
    assert (spec.type, spec.config, spec.pmu) == (4, 0x1C2, "cpu")
    specs = resolve_events(["r1a8:u"], HYBRID)
    assert [(s.name, s.type, s.config, s.cpus) for s in specs] == [
        ("cpu_atom/r1a8/u", 10, 0x1A8, tuple(range(8, 16))),
        ("cpu_core/r1a8/u", 4, 0x1A8, tuple(range(8))),
    ]
    assert all(s.exclude_kernel for s in specs)
    assert [(s.type, s.config) for s in resolve_events(["r1a8"], SERVER)] == [(_abi.PERF_TYPE_RAW, 0x1A8)]
