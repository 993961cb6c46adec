"""The kernel ABI of ``perf_event_open(2)``: the attribute struct, its constants, syscall and ioctl numbers.

Everything here mirrors ``include/uapi/linux/perf_event.h`` of current kernels. The struct is written out in
full (136 bytes, ``PERF_ATTR_SIZE_VER8``, Linux 6.3) rather than trimmed to the fields perfpulse sets: the
``size`` field tells the kernel which version of the struct it is reading, and an older kernel accepts a
larger struct as long as the bytes it does not know are zero (otherwise it answers E2BIG with its own
size, which ``counting.open_event`` handles). A full struct also lets a test pin every offset against the
UAPI header, which is how a transcription mistake gets caught before it becomes a mysterious EINVAL.

The 64-bit flag word is a C bit-field. ctypes can declare bit-fields, but mypy cannot see them and
ctypes' packing rules had layout fixes as late as CPython 3.14, so the word is one ``flags`` integer and
every named bit is a property computed from a table. On big-endian machines (s390x) GCC allocates
bit-fields from the most significant bit, which the table accounts for; that is why the positions below
are *declaration order* positions, not masks. A test cross-checks the table against ctypes' own layout.

Syscall numbers: ``perf_event_open`` has a different number on every architecture and glibc has no wrapper,
so ``syscall_number()`` maps ``platform.machine()`` to it and refuses anything else with ``UnsupportedArch``
rather than guessing (a wrong number would call an unrelated syscall with our pointer as its argument).
"""

from __future__ import annotations

import ctypes
import errno as _errno
import platform
import sys

# -- perf_type_id ---------------------------------------------------------------------------------------
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_TYPE_HW_CACHE = 3
PERF_TYPE_RAW = 4
PERF_TYPE_BREAKPOINT = 5

# Hybrid CPUs (Linux 5.13+): the upper 32 bits of ``config`` of a HARDWARE or HW_CACHE event select the
# core PMU by its sysfs ``type`` ("extended type"); 0 there means "any core PMU".
PERF_PMU_TYPE_SHIFT = 32
PERF_HW_EVENT_MASK = 0xFFFFFFFF

# -- perf_hw_id -----------------------------------------------------------------------------------------
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_HW_INSTRUCTIONS = 1
PERF_COUNT_HW_CACHE_REFERENCES = 2
PERF_COUNT_HW_CACHE_MISSES = 3
PERF_COUNT_HW_BRANCH_INSTRUCTIONS = 4
PERF_COUNT_HW_BRANCH_MISSES = 5
PERF_COUNT_HW_BUS_CYCLES = 6
PERF_COUNT_HW_STALLED_CYCLES_FRONTEND = 7  # Linux 3.0
PERF_COUNT_HW_STALLED_CYCLES_BACKEND = 8  # Linux 3.0
PERF_COUNT_HW_REF_CPU_CYCLES = 9  # Linux 3.3

# -- perf_hw_cache_id / op / result: config = id | (op << 8) | (result << 16) ------------------------------
PERF_COUNT_HW_CACHE_L1D = 0
PERF_COUNT_HW_CACHE_L1I = 1
PERF_COUNT_HW_CACHE_LL = 2
PERF_COUNT_HW_CACHE_DTLB = 3
PERF_COUNT_HW_CACHE_ITLB = 4
PERF_COUNT_HW_CACHE_BPU = 5
PERF_COUNT_HW_CACHE_NODE = 6  # Linux 3.1
PERF_COUNT_HW_CACHE_OP_READ = 0
PERF_COUNT_HW_CACHE_OP_WRITE = 1
PERF_COUNT_HW_CACHE_OP_PREFETCH = 2
PERF_COUNT_HW_CACHE_RESULT_ACCESS = 0
PERF_COUNT_HW_CACHE_RESULT_MISS = 1

# -- perf_sw_ids ----------------------------------------------------------------------------------------
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_COUNT_SW_CONTEXT_SWITCHES = 3
PERF_COUNT_SW_CPU_MIGRATIONS = 4
PERF_COUNT_SW_PAGE_FAULTS_MIN = 5
PERF_COUNT_SW_PAGE_FAULTS_MAJ = 6
PERF_COUNT_SW_ALIGNMENT_FAULTS = 7
PERF_COUNT_SW_EMULATION_FAULTS = 8
PERF_COUNT_SW_DUMMY = 9  # Linux 3.12
PERF_COUNT_SW_BPF_OUTPUT = 10  # Linux 4.4
PERF_COUNT_SW_CGROUP_SWITCHES = 11  # Linux 5.13

# -- perf_event_read_format -----------------------------------------------------------------------------
PERF_FORMAT_TOTAL_TIME_ENABLED = 1 << 0
PERF_FORMAT_TOTAL_TIME_RUNNING = 1 << 1
PERF_FORMAT_ID = 1 << 2
PERF_FORMAT_GROUP = 1 << 3
PERF_FORMAT_LOST = 1 << 4  # Linux 6.0

# -- perf_event_open flags ------------------------------------------------------------------------------
PERF_FLAG_FD_NO_GROUP = 1 << 0
PERF_FLAG_FD_OUTPUT = 1 << 1
PERF_FLAG_PID_CGROUP = 1 << 2  # pid is a cgroup directory fd; cpu must be >= 0 (Linux 2.6.39)
PERF_FLAG_FD_CLOEXEC = 1 << 3  # Linux 3.14

PERF_IOC_FLAG_GROUP = 1 << 0

# -- sizes ----------------------------------------------------------------------------------------------
PERF_ATTR_SIZE_VER0 = 64  # first published struct
PERF_ATTR_SIZE_VER1 = 72  # config2 (2.6.39)
PERF_ATTR_SIZE_VER2 = 80  # branch_sample_type (3.4)
PERF_ATTR_SIZE_VER3 = 96  # sample_regs_user, sample_stack_user (3.7)
PERF_ATTR_SIZE_VER4 = 104  # sample_regs_intr (3.19)
PERF_ATTR_SIZE_VER5 = 112  # aux_watermark (4.1)
PERF_ATTR_SIZE_VER6 = 120  # aux_sample_size (5.5)
PERF_ATTR_SIZE_VER7 = 128  # sig_data (5.13)
PERF_ATTR_SIZE_VER8 = 136  # config3 (6.3)


class _Config1(ctypes.Union):
    _fields_ = (
        ("bp_addr", ctypes.c_uint64),
        ("kprobe_func", ctypes.c_uint64),
        ("uprobe_path", ctypes.c_uint64),
        ("config1", ctypes.c_uint64),
    )


class _Config2(ctypes.Union):
    _fields_ = (
        ("bp_len", ctypes.c_uint64),
        ("kprobe_addr", ctypes.c_uint64),
        ("probe_offset", ctypes.c_uint64),
        ("config2", ctypes.c_uint64),
    )


class _Period(ctypes.Union):
    _fields_ = (("sample_period", ctypes.c_uint64), ("sample_freq", ctypes.c_uint64))


class _Wakeup(ctypes.Union):
    _fields_ = (("wakeup_events", ctypes.c_uint32), ("wakeup_watermark", ctypes.c_uint32))


# The flag word, in declaration order: (name, first bit counted from the first declared field, width).
# Comments give the kernel release that added each bit; bits a running kernel does not know must stay 0
# (the kernel rejects unknown set bits with EINVAL).
FLAG_BITS: tuple[tuple[str, int, int], ...] = (
    ("disabled", 0, 1),
    ("inherit", 1, 1),
    ("pinned", 2, 1),
    ("exclusive", 3, 1),
    ("exclude_user", 4, 1),
    ("exclude_kernel", 5, 1),
    ("exclude_hv", 6, 1),
    ("exclude_idle", 7, 1),
    ("mmap", 8, 1),
    ("comm", 9, 1),
    ("freq", 10, 1),
    ("inherit_stat", 11, 1),
    ("enable_on_exec", 12, 1),
    ("task", 13, 1),
    ("watermark", 14, 1),
    ("precise_ip", 15, 2),
    ("mmap_data", 17, 1),
    ("sample_id_all", 18, 1),
    ("exclude_host", 19, 1),  # 3.2
    ("exclude_guest", 20, 1),  # 3.2
    ("exclude_callchain_kernel", 21, 1),  # 3.7
    ("exclude_callchain_user", 22, 1),  # 3.7
    ("mmap2", 23, 1),  # 3.12
    ("comm_exec", 24, 1),  # 3.16
    ("use_clockid", 25, 1),  # 4.1
    ("context_switch", 26, 1),  # 4.3
    ("write_backward", 27, 1),  # 4.10
    ("namespaces", 28, 1),  # 4.12
    ("ksymbol", 29, 1),  # 5.1
    ("bpf_event", 30, 1),  # 5.1
    ("aux_output", 31, 1),  # 5.4
    ("cgroup", 32, 1),  # 5.7
    ("text_poke", 33, 1),  # 5.9
    ("build_id", 34, 1),  # 5.12
    ("inherit_thread", 35, 1),  # 5.13
    ("remove_on_exec", 36, 1),  # 5.13
    ("sigtrap", 37, 1),  # 5.13
    ("defer_callchain", 38, 1),  # 6.19 (deferred user callchains)
    ("defer_output", 39, 1),  # 6.19
)

# The 32-bit ``aux_action`` word (Linux 6.13; a reserved u32 before).
AUX_ACTION_BITS: tuple[tuple[str, int, int], ...] = (
    ("aux_start_paused", 0, 1),
    ("aux_pause", 1, 1),
    ("aux_resume", 2, 1),
)

_BIG_ENDIAN = sys.byteorder == "big"


def _bit_shift(first: int, width: int, word_bits: int, big_endian: bool) -> int:
    """Shift of a C bit-field within its word: GCC fills from bit 0 on little-endian ABIs, from the top on
    big-endian ones."""
    return word_bits - first - width if big_endian else first


def _flag_property(word: str, first: int, width: int, word_bits: int) -> property:
    shift = _bit_shift(first, width, word_bits, _BIG_ENDIAN)
    mask = ((1 << width) - 1) << shift

    def get(self: ctypes.Structure) -> int:
        return (int(getattr(self, word)) & mask) >> shift

    def set_(self: ctypes.Structure, value: int | bool) -> None:
        v = int(value)
        if v < 0 or v >= (1 << width):
            raise ValueError(f"value {v} does not fit a {width}-bit field")
        setattr(self, word, (int(getattr(self, word)) & ~mask) | (v << shift))

    return property(get, set_)


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` as of Linux 6.3+ (136 bytes).

    Offsets (pinned by tests): type 0, size 4, config 8, sample_period 16, sample_type 24, read_format 32,
    flags 40, wakeup_events 48, bp_type 52, config1 56, config2 64, branch_sample_type 72,
    sample_regs_user 80, sample_stack_user 88, clockid 92, sample_regs_intr 96, aux_watermark 104,
    sample_max_stack 108, __reserved_2 110, aux_sample_size 112, aux_action 116, sig_data 120, config3 128.
    """

    _anonymous_ = ("_u_period", "_u_wakeup", "_u_config1", "_u_config2")
    _fields_ = (
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("_u_period", _Period),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("_u_wakeup", _Wakeup),
        ("bp_type", ctypes.c_uint32),
        ("_u_config1", _Config1),  # config1: 2.6.39
        ("_u_config2", _Config2),  # config2: 2.6.39
        ("branch_sample_type", ctypes.c_uint64),  # 3.4
        ("sample_regs_user", ctypes.c_uint64),  # 3.7
        ("sample_stack_user", ctypes.c_uint32),  # 3.7
        ("clockid", ctypes.c_int32),  # 4.1
        ("sample_regs_intr", ctypes.c_uint64),  # 3.19
        ("aux_watermark", ctypes.c_uint32),  # 4.1
        ("sample_max_stack", ctypes.c_uint16),  # 4.8
        ("reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),  # 5.5
        ("aux_action", ctypes.c_uint32),  # 6.13 (bits: aux_start_paused, aux_pause, aux_resume)
        ("sig_data", ctypes.c_uint64),  # 5.13
        ("config3", ctypes.c_uint64),  # 6.3
    )

    # mypy cannot see ctypes fields or the generated properties; declare the ones perfpulse uses.
    type: int
    size: int
    config: int
    sample_period: int
    sample_freq: int
    sample_type: int
    read_format: int
    flags: int
    config1: int
    config2: int
    config3: int
    aux_action: int
    disabled: int
    inherit: int
    pinned: int
    exclusive: int
    exclude_user: int
    exclude_kernel: int
    exclude_hv: int
    exclude_idle: int
    enable_on_exec: int
    precise_ip: int
    exclude_host: int
    exclude_guest: int

    def __init__(self, **fields: int) -> None:
        super().__init__()
        self.size = ctypes.sizeof(PerfEventAttr)
        for name, value in fields.items():
            if not hasattr(type(self), name) and name not in _UNION_FIELDS:
                raise TypeError(f"perf_event_attr has no field {name!r}")
            setattr(self, name, value)

    def flag_names(self) -> list[str]:
        """The names of the flag bits that are set, for error messages and ``repr``."""
        return [name for name, _first, _width in FLAG_BITS if getattr(self, name)]

    def copy(self) -> PerfEventAttr:
        dup = PerfEventAttr()
        ctypes.memmove(ctypes.addressof(dup), ctypes.addressof(self), ctypes.sizeof(PerfEventAttr))
        return dup

    def __repr__(self) -> str:
        return (
            f"PerfEventAttr(type={self.type}, config={self.config:#x}, config1={self.config1:#x}, "
            f"config2={self.config2:#x}, size={self.size}, read_format={self.read_format:#x}, "
            f"flags=[{','.join(self.flag_names())}])"
        )


_UNION_FIELDS = frozenset(
    name for union in (_Period, _Wakeup, _Config1, _Config2) for name, _ in union._fields_
)

for _name, _first, _width in FLAG_BITS:
    setattr(PerfEventAttr, _name, _flag_property("flags", _first, _width, 64))
for _name, _first, _width in AUX_ACTION_BITS:
    setattr(PerfEventAttr, _name, _flag_property("aux_action", _first, _width, 32))
del _name, _first, _width

assert ctypes.sizeof(PerfEventAttr) == PERF_ATTR_SIZE_VER8


# -- syscall numbers ------------------------------------------------------------------------------------
# From each architecture's syscall table (arch/*/entry/syscalls or include/uapi/asm-generic/unistd.h).
PERF_EVENT_OPEN_NR: dict[str, int] = {
    "x86_64": 298,  # arch/x86/entry/syscalls/syscall_64.tbl
    "i386": 336,  # arch/x86/entry/syscalls/syscall_32.tbl
    "aarch64": 241,  # asm-generic/unistd.h
    "arm": 364,  # arch/arm/tools/syscall.tbl (EABI)
    "riscv64": 241,  # asm-generic/unistd.h
    "ppc64le": 319,  # arch/powerpc/kernel/syscalls/syscall.tbl
    "s390x": 331,  # arch/s390/kernel/syscalls/syscall.tbl
}

_MACHINE_ALIASES: dict[str, str] = {
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "i486": "i386",
    "i586": "i386",
    "i686": "i386",
    "x86": "i386",
    "arm64": "aarch64",
    "armv6l": "arm",
    "armv7l": "arm",
    "armv7": "arm",
    "armv8l": "arm",
    "ppc64": "ppc64le",  # same number on big-endian ppc64
}


class UnsupportedArch(OSError):
    """``perf_event_open`` is not mapped for this machine; ``reason`` says which machine and what is known."""

    def __init__(self, machine: str) -> None:
        self.machine = machine
        self.reason = (
            f"perf_event_open's syscall number is not known for architecture {machine!r}; "
            f"supported: {', '.join(sorted(PERF_EVENT_OPEN_NR))}"
        )
        super().__init__(_errno.ENOSYS, self.reason)


def normalize_machine(machine: str | None = None) -> str:
    """``platform.machine()`` spelled the way ``PERF_EVENT_OPEN_NR`` keys are."""
    m = (machine if machine is not None else platform.machine()).strip().lower()
    return _MACHINE_ALIASES.get(m, m)


def syscall_number(machine: str | None = None) -> int:
    """The ``perf_event_open`` syscall number for ``machine`` (default: this one)."""
    m = normalize_machine(machine)
    try:
        return PERF_EVENT_OPEN_NR[m]
    except KeyError:
        raise UnsupportedArch(machine if machine is not None else platform.machine()) from None


# -- ioctls ---------------------------------------------------------------------------------------------
# <asm-generic/ioctl.h>: dir(2) | size(14) | type(8) | nr(8). powerpc (and mips/sparc/alpha) use 3 dir
# bits and 13 size bits with different direction values, so the numbers differ there.
def _ioc_layout(machine: str) -> tuple[int, int, int, int]:
    """(none, write, read, size bits) of _IOC for ``machine``."""
    if machine.startswith(("ppc", "powerpc", "mips", "sparc", "alpha")):
        return 1, 4, 2, 13
    return 0, 1, 2, 14


def _ioc(direction: str, kind: int, nr: int, size: int, machine: str | None = None) -> int:
    none, write, read, size_bits = _ioc_layout(normalize_machine(machine))
    dir_bits = {"none": none, "w": write, "r": read, "rw": read | write}[direction]
    dir_shift = 8 + 8 + size_bits
    return (dir_bits << dir_shift) | (size << 16) | (kind << 8) | nr


def ioctl_numbers(machine: str | None = None) -> dict[str, int]:
    """The perf ioctl request numbers for ``machine`` (pointer-sized arguments assume a 64-bit ABI)."""
    m = normalize_machine(machine)
    ptr = 4 if m in ("i386", "arm") else 8
    d = ord("$")
    return {
        "PERF_EVENT_IOC_ENABLE": _ioc("none", d, 0, 0, m),
        "PERF_EVENT_IOC_DISABLE": _ioc("none", d, 1, 0, m),
        "PERF_EVENT_IOC_REFRESH": _ioc("none", d, 2, 0, m),
        "PERF_EVENT_IOC_RESET": _ioc("none", d, 3, 0, m),
        "PERF_EVENT_IOC_PERIOD": _ioc("w", d, 4, 8, m),
        "PERF_EVENT_IOC_SET_OUTPUT": _ioc("none", d, 5, 0, m),
        "PERF_EVENT_IOC_SET_FILTER": _ioc("w", d, 6, ptr, m),
        "PERF_EVENT_IOC_ID": _ioc("r", d, 7, ptr, m),
        "PERF_EVENT_IOC_SET_BPF": _ioc("w", d, 8, 4, m),
        "PERF_EVENT_IOC_PAUSE_OUTPUT": _ioc("w", d, 9, 4, m),
        "PERF_EVENT_IOC_QUERY_BPF": _ioc("rw", d, 10, ptr, m),
        "PERF_EVENT_IOC_MODIFY_ATTRIBUTES": _ioc("w", d, 11, ptr, m),
    }


_IOCTLS = ioctl_numbers()
PERF_EVENT_IOC_ENABLE = _IOCTLS["PERF_EVENT_IOC_ENABLE"]
PERF_EVENT_IOC_DISABLE = _IOCTLS["PERF_EVENT_IOC_DISABLE"]
PERF_EVENT_IOC_REFRESH = _IOCTLS["PERF_EVENT_IOC_REFRESH"]
PERF_EVENT_IOC_RESET = _IOCTLS["PERF_EVENT_IOC_RESET"]
PERF_EVENT_IOC_PERIOD = _IOCTLS["PERF_EVENT_IOC_PERIOD"]
PERF_EVENT_IOC_SET_OUTPUT = _IOCTLS["PERF_EVENT_IOC_SET_OUTPUT"]
PERF_EVENT_IOC_SET_FILTER = _IOCTLS["PERF_EVENT_IOC_SET_FILTER"]
PERF_EVENT_IOC_ID = _IOCTLS["PERF_EVENT_IOC_ID"]
PERF_EVENT_IOC_SET_BPF = _IOCTLS["PERF_EVENT_IOC_SET_BPF"]
PERF_EVENT_IOC_PAUSE_OUTPUT = _IOCTLS["PERF_EVENT_IOC_PAUSE_OUTPUT"]
PERF_EVENT_IOC_QUERY_BPF = _IOCTLS["PERF_EVENT_IOC_QUERY_BPF"]
PERF_EVENT_IOC_MODIFY_ATTRIBUTES = _IOCTLS["PERF_EVENT_IOC_MODIFY_ATTRIBUTES"]
