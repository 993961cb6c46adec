"""perf_event_attr layout, flag bits, syscall and ioctl numbers against the kernel UAPI.

The expected offsets are literal numbers read off include/uapi/linux/perf_event.h (Linux 6.13+ layout,
where the u32 at 116 became ``aux_action``), not computed from the struct under test.
"""

from __future__ import annotations

import ctypes

import pytest

from perfpulse.perf import _abi
from perfpulse.perf._abi import PerfEventAttr

UAPI_OFFSETS = {
    "type": 0,
    "size": 4,
    "config": 8,
    "sample_period": 16,
    "sample_freq": 16,
    "sample_type": 24,
    "read_format": 32,
    "flags": 40,
    "wakeup_events": 48,
    "wakeup_watermark": 48,
    "bp_type": 52,
    "bp_addr": 56,
    "kprobe_func": 56,
    "uprobe_path": 56,
    "config1": 56,
    "bp_len": 64,
    "kprobe_addr": 64,
    "probe_offset": 64,
    "config2": 64,
    "branch_sample_type": 72,
    "sample_regs_user": 80,
    "sample_stack_user": 88,
    "clockid": 92,
    "sample_regs_intr": 96,
    "aux_watermark": 104,
    "sample_max_stack": 108,
    "reserved_2": 110,
    "aux_sample_size": 112,
    "aux_action": 116,
    "sig_data": 120,
    "config3": 128,
}


def _offset(name: str) -> int:
    """Offset of a field, following anonymous unions (ctypes exposes their members on the struct)."""
    for outer, _ in PerfEventAttr._fields_:
        if outer == name:
            return int(getattr(PerfEventAttr, outer).offset)
    for outer, union in PerfEventAttr._fields_:
        if outer in PerfEventAttr._anonymous_ and name in dict(union._fields_):  # type: ignore[call-overload]
            return int(getattr(PerfEventAttr, outer).offset) + int(getattr(union, name).offset)
    raise KeyError(name)


def test_size_is_uapi_ver8() -> None:
    assert ctypes.sizeof(PerfEventAttr) == 136
    assert _abi.PERF_ATTR_SIZE_VER8 == 136
    assert PerfEventAttr().size == 136


@pytest.mark.parametrize(("name", "offset"), sorted(UAPI_OFFSETS.items()))
def test_field_offsets(name: str, offset: int) -> None:
    assert _offset(name) == offset


def test_size_versions_match_offsets() -> None:
    # Each PERF_ATTR_SIZE_VERn ends where the field it added ends.
    assert _abi.PERF_ATTR_SIZE_VER0 == 64
    assert _offset("config2") + 8 == _abi.PERF_ATTR_SIZE_VER1 == 72
    assert _offset("branch_sample_type") + 8 == _abi.PERF_ATTR_SIZE_VER2 == 80
    assert _offset("clockid") + 4 == _abi.PERF_ATTR_SIZE_VER3 == 96
    assert _offset("sample_regs_intr") + 8 == _abi.PERF_ATTR_SIZE_VER4 == 104
    assert _abi.PERF_ATTR_SIZE_VER5 == 112
    assert _offset("reserved_2") + 2 == 112
    assert _offset("aux_action") + 4 == _abi.PERF_ATTR_SIZE_VER6 == 120
    assert _offset("sig_data") + 8 == _abi.PERF_ATTR_SIZE_VER7 == 128
    assert _offset("config3") + 8 == _abi.PERF_ATTR_SIZE_VER8 == 136


# Bit positions in declaration order, from the UAPI bit-field list.
UAPI_BITS = {
    "disabled": 0,
    "inherit": 1,
    "pinned": 2,
    "exclusive": 3,
    "exclude_user": 4,
    "exclude_kernel": 5,
    "exclude_hv": 6,
    "exclude_idle": 7,
    "mmap": 8,
    "comm": 9,
    "freq": 10,
    "inherit_stat": 11,
    "enable_on_exec": 12,
    "task": 13,
    "watermark": 14,
    "mmap_data": 17,
    "sample_id_all": 18,
    "exclude_host": 19,
    "exclude_guest": 20,
    "exclude_callchain_kernel": 21,
    "exclude_callchain_user": 22,
    "mmap2": 23,
    "comm_exec": 24,
    "use_clockid": 25,
    "context_switch": 26,
    "write_backward": 27,
    "namespaces": 28,
    "ksymbol": 29,
    "bpf_event": 30,
    "aux_output": 31,
    "cgroup": 32,
    "text_poke": 33,
    "build_id": 34,
    "inherit_thread": 35,
    "remove_on_exec": 36,
    "sigtrap": 37,
}


@pytest.mark.skipif(_abi.sys.byteorder != "little", reason="bit masks below are the little-endian ones")
@pytest.mark.parametrize(("name", "bit"), sorted(UAPI_BITS.items()))
def test_flag_bits_little_endian(name: str, bit: int) -> None:
    attr = PerfEventAttr()
    setattr(attr, name, 1)
    assert attr.flags == 1 << bit
    assert getattr(attr, name) == 1
    assert attr.flag_names() == [name]
    setattr(attr, name, 0)
    assert attr.flags == 0


def test_precise_ip_is_two_bits() -> None:
    attr = PerfEventAttr()
    attr.precise_ip = 3
    attr.disabled = 1
    assert attr.flags == (3 << 15) | 1
    assert attr.precise_ip == 3
    with pytest.raises(ValueError, match="2-bit"):
        attr.precise_ip = 4


def test_flag_matches_ctypes_bitfield_layout() -> None:
    """Cross-check against ctypes' own C bit-field layout (GCC-compatible on this ABI)."""

    class Bits(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint64, w) for n, _first, w in _abi.FLAG_BITS] + [
            ("rest", ctypes.c_uint64, 64 - sum(w for _n, _f, w in _abi.FLAG_BITS))
        ]

    for name, _first, _width in _abi.FLAG_BITS:
        ours = PerfEventAttr()
        setattr(ours, name, 1)
        theirs = Bits()
        setattr(theirs, name, 1)
        assert ours.flags == int.from_bytes(bytes(theirs), _abi.sys.byteorder), name


def test_big_endian_bitfields_fill_from_the_top() -> None:
    # s390x: GCC allocates the first declared bit-field at the most significant bit.
    assert _abi._bit_shift(0, 1, 64, big_endian=True) == 63  # disabled
    assert _abi._bit_shift(15, 2, 64, big_endian=True) == 47  # precise_ip occupies bits 47-48
    assert _abi._bit_shift(0, 1, 32, big_endian=True) == 31  # aux_start_paused
    assert _abi._bit_shift(5, 1, 64, big_endian=False) == 5


def test_aux_action_bits() -> None:
    attr = PerfEventAttr()
    attr.aux_pause = 1  # type: ignore[attr-defined]
    assert attr.aux_action == (1 << 1 if _abi.sys.byteorder == "little" else 1 << 30)


def test_unions_alias() -> None:
    attr = PerfEventAttr(config1=0x1234, config2=7)
    assert attr.bp_addr == 0x1234  # type: ignore[attr-defined]
    assert attr.probe_offset == 7  # type: ignore[attr-defined]
    attr.sample_freq = 99
    assert attr.sample_period == 99


def test_constructor_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no field 'confg'"):
        PerfEventAttr(confg=1)


def test_copy_is_independent() -> None:
    a = PerfEventAttr(type=4, config=0x3C)
    b = a.copy()
    b.config = 1
    assert a.config == 0x3C and b.type == 4


def test_repr_names_flags() -> None:
    attr = PerfEventAttr(type=1, config=2)
    attr.disabled = 1
    attr.exclude_kernel = 1
    assert "flags=[disabled,exclude_kernel]" in repr(attr)


def test_constants() -> None:
    assert (
        _abi.PERF_TYPE_HARDWARE,
        _abi.PERF_TYPE_SOFTWARE,
        _abi.PERF_TYPE_HW_CACHE,
        _abi.PERF_TYPE_RAW,
    ) == (
        0,
        1,
        3,
        4,
    )
    assert _abi.PERF_COUNT_SW_DUMMY == 9 and _abi.PERF_COUNT_SW_CGROUP_SWITCHES == 11
    assert _abi.PERF_COUNT_HW_REF_CPU_CYCLES == 9
    assert _abi.PERF_FORMAT_GROUP == 8 and _abi.PERF_FORMAT_ID == 4
    assert _abi.PERF_FLAG_FD_CLOEXEC == 8 and _abi.PERF_FLAG_PID_CGROUP == 4
    assert _abi.PERF_PMU_TYPE_SHIFT == 32


@pytest.mark.parametrize(
    ("machine", "nr"),
    [
        ("x86_64", 298),
        ("amd64", 298),
        ("i686", 336),
        ("i386", 336),
        ("aarch64", 241),
        ("arm64", 241),
        ("armv7l", 364),
        ("riscv64", 241),
        ("ppc64le", 319),
        ("s390x", 331),
    ],
)
def test_syscall_numbers(machine: str, nr: int) -> None:
    assert _abi.syscall_number(machine) == nr


@pytest.mark.parametrize("machine", ["mips64", "sparc64", "loongarch64", ""])
def test_unsupported_arch(machine: str) -> None:
    with pytest.raises(_abi.UnsupportedArch) as info:
        _abi.syscall_number(machine)
    assert isinstance(info.value, OSError)
    assert repr(machine) in info.value.reason
    assert "x86_64" in info.value.reason


def test_this_machine_has_a_number() -> None:
    assert _abi.syscall_number() in _abi.PERF_EVENT_OPEN_NR.values()


def test_ioctl_numbers_generic() -> None:
    ioc = _abi.ioctl_numbers("x86_64")
    assert ioc["PERF_EVENT_IOC_ENABLE"] == 0x2400
    assert ioc["PERF_EVENT_IOC_DISABLE"] == 0x2401
    assert ioc["PERF_EVENT_IOC_RESET"] == 0x2403
    assert ioc["PERF_EVENT_IOC_PERIOD"] == 0x40082404
    assert ioc["PERF_EVENT_IOC_ID"] == 0x80082407
    assert ioc["PERF_EVENT_IOC_SET_BPF"] == 0x40042408
    assert ioc["PERF_EVENT_IOC_MODIFY_ATTRIBUTES"] == 0x4008240B
    assert _abi.ioctl_numbers("i686")["PERF_EVENT_IOC_ID"] == 0x80042407


def test_ioctl_numbers_powerpc() -> None:
    # powerpc: _IOC_NONE is 1 and the direction field starts at bit 29.
    ioc = _abi.ioctl_numbers("ppc64le")
    assert ioc["PERF_EVENT_IOC_ENABLE"] == 0x20002400
    assert ioc["PERF_EVENT_IOC_ID"] == 0x40082407
    assert ioc["PERF_EVENT_IOC_PERIOD"] == 0x80082404
