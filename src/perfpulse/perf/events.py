"""Event names, as ``perf list`` and ``perf stat -e`` spell them, turned into perf_event_attr contents.

Accepted forms (the subset of perf's grammar a monitor needs, with perf's meaning):

- generic hardware names (``cycles``/``cpu-cycles``, ``instructions``, ``cache-misses``, ``branches``,
  ``stalled-cycles-frontend``, ``ref-cycles``, ...): ``PERF_TYPE_HARDWARE``, which the kernel maps to each
  PMU's own encoding;
- the generic cache matrix ``<cache>-<op>s`` / ``<cache>-<op>-misses`` (``L1-dcache-loads``,
  ``LLC-load-misses``, ``dTLB-store-misses``, ``branch-loads``, ``node-prefetches``...), only for the
  (cache, op) pairs perf lists, plus perf's aliases (``l1d``, ``L2``, ``d-tlb``, ``read``, ``miss``...);
- software names (``task-clock``, ``cpu-clock``, ``context-switches``/``cs``, ``cpu-migrations``/
  ``migrations``, ``page-faults``/``faults``, ``minor-faults``, ``major-faults``, ``alignment-faults``,
  ``emulation-faults``, ``dummy``, ``bpf-output``, ``cgroup-switches``);
- ``pmu/event/`` (a sysfs ``events/`` alias, or a generic name on a core PMU) and
  ``pmu/event=0x3c,umask=0x1,cmask=1,inv/`` (terms encoded through the PMU's ``format/`` bit fields;
  ``config=``/``config1=``/``config2=``/``config3=`` set a word directly, ``name=`` renames);
- raw ``rNNNN`` (hex, ``PERF_TYPE_RAW``);
- modifiers ``:u``, ``:k``, ``:h`` and combinations (or a suffix after the closing slash, ``cpu/.../u``):
  naming any of them excludes the privilege levels *not* named, exactly as perf does.

On a hybrid CPU the kernel routes a generic hardware or cache event without an extended type to the PMU
registered as ``PERF_TYPE_RAW`` (the P-cores' ``cpu_core``), so E-cores would go uncounted;
``resolve_events`` therefore expands it into one spec per core PMU using the extended type (``pmu.type << 32 |
config``, Linux 5.13+), each limited to that PMU's CPUs; a raw ``rNNNN`` becomes ``<core pmu>/rNNNN/``
(raw codes differ per core type, and ``PERF_TYPE_RAW`` reaches only one of them). It also expands
``uncore_imc/...`` into every ``uncore_imc_<n>`` instance. Unknown names raise ``UnknownEventError`` with
close matches.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from perfpulse.perf import _abi
from perfpulse.perf.pmu import CONFIG_WORDS, Pmu, core_pmus, discover_pmus

HARDWARE_EVENTS: dict[str, int] = {
    "cpu-cycles": _abi.PERF_COUNT_HW_CPU_CYCLES,
    "cycles": _abi.PERF_COUNT_HW_CPU_CYCLES,
    "instructions": _abi.PERF_COUNT_HW_INSTRUCTIONS,
    "cache-references": _abi.PERF_COUNT_HW_CACHE_REFERENCES,
    "cache-misses": _abi.PERF_COUNT_HW_CACHE_MISSES,
    "branch-instructions": _abi.PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
    "branches": _abi.PERF_COUNT_HW_BRANCH_INSTRUCTIONS,
    "branch-misses": _abi.PERF_COUNT_HW_BRANCH_MISSES,
    "bus-cycles": _abi.PERF_COUNT_HW_BUS_CYCLES,
    "stalled-cycles-frontend": _abi.PERF_COUNT_HW_STALLED_CYCLES_FRONTEND,
    "idle-cycles-frontend": _abi.PERF_COUNT_HW_STALLED_CYCLES_FRONTEND,
    "stalled-cycles-backend": _abi.PERF_COUNT_HW_STALLED_CYCLES_BACKEND,
    "idle-cycles-backend": _abi.PERF_COUNT_HW_STALLED_CYCLES_BACKEND,
    "ref-cycles": _abi.PERF_COUNT_HW_REF_CPU_CYCLES,
}

SOFTWARE_EVENTS: dict[str, int] = {
    "cpu-clock": _abi.PERF_COUNT_SW_CPU_CLOCK,
    "task-clock": _abi.PERF_COUNT_SW_TASK_CLOCK,
    "page-faults": _abi.PERF_COUNT_SW_PAGE_FAULTS,
    "faults": _abi.PERF_COUNT_SW_PAGE_FAULTS,
    "context-switches": _abi.PERF_COUNT_SW_CONTEXT_SWITCHES,
    "cs": _abi.PERF_COUNT_SW_CONTEXT_SWITCHES,
    "cpu-migrations": _abi.PERF_COUNT_SW_CPU_MIGRATIONS,
    "migrations": _abi.PERF_COUNT_SW_CPU_MIGRATIONS,
    "minor-faults": _abi.PERF_COUNT_SW_PAGE_FAULTS_MIN,
    "major-faults": _abi.PERF_COUNT_SW_PAGE_FAULTS_MAJ,
    "alignment-faults": _abi.PERF_COUNT_SW_ALIGNMENT_FAULTS,
    "emulation-faults": _abi.PERF_COUNT_SW_EMULATION_FAULTS,
    "dummy": _abi.PERF_COUNT_SW_DUMMY,
    "bpf-output": _abi.PERF_COUNT_SW_BPF_OUTPUT,
    "cgroup-switches": _abi.PERF_COUNT_SW_CGROUP_SWITCHES,
}

# perf's tables (tools/perf/util/evsel.c): the first spelling is the one perf list prints.
_CACHE_NAMES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (_abi.PERF_COUNT_HW_CACHE_L1D, ("L1-dcache", "l1-d", "l1d", "L1-data")),
    (_abi.PERF_COUNT_HW_CACHE_L1I, ("L1-icache", "l1-i", "l1i", "L1-instruction")),
    (_abi.PERF_COUNT_HW_CACHE_LL, ("LLC", "L2")),
    (_abi.PERF_COUNT_HW_CACHE_DTLB, ("dTLB", "d-tlb", "Data-TLB")),
    (_abi.PERF_COUNT_HW_CACHE_ITLB, ("iTLB", "i-tlb", "Instruction-TLB")),
    (_abi.PERF_COUNT_HW_CACHE_BPU, ("branch", "branches", "bpu", "btb", "bpc")),
    (_abi.PERF_COUNT_HW_CACHE_NODE, ("node",)),
)
_CACHE_OPS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (_abi.PERF_COUNT_HW_CACHE_OP_READ, ("load", "loads", "read")),
    (_abi.PERF_COUNT_HW_CACHE_OP_WRITE, ("store", "stores", "write")),
    (
        _abi.PERF_COUNT_HW_CACHE_OP_PREFETCH,
        ("prefetch", "prefetches", "speculative-read", "speculative-load"),
    ),
)
_CACHE_RESULTS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (_abi.PERF_COUNT_HW_CACHE_RESULT_ACCESS, ("refs", "Reference", "ops", "access")),
    (_abi.PERF_COUNT_HW_CACHE_RESULT_MISS, ("misses", "miss")),
)
_R, _W, _P = (
    _abi.PERF_COUNT_HW_CACHE_OP_READ,
    _abi.PERF_COUNT_HW_CACHE_OP_WRITE,
    _abi.PERF_COUNT_HW_CACHE_OP_PREFETCH,
)
# Which ops perf considers meaningful per cache (evsel__is_cache_op_valid); others are not listed.
_CACHE_VALID_OPS: dict[int, frozenset[int]] = {
    _abi.PERF_COUNT_HW_CACHE_L1D: frozenset({_R, _W, _P}),
    _abi.PERF_COUNT_HW_CACHE_L1I: frozenset({_R, _P}),
    _abi.PERF_COUNT_HW_CACHE_LL: frozenset({_R, _W, _P}),
    _abi.PERF_COUNT_HW_CACHE_DTLB: frozenset({_R, _W, _P}),
    _abi.PERF_COUNT_HW_CACHE_ITLB: frozenset({_R}),
    _abi.PERF_COUNT_HW_CACHE_BPU: frozenset({_R}),
    _abi.PERF_COUNT_HW_CACHE_NODE: frozenset({_R, _W, _P}),
}
_OP_PLURAL = {_R: "loads", _W: "stores", _P: "prefetches"}
_OP_SINGULAR = {_R: "load", _W: "store", _P: "prefetch"}


def _lookup(table: tuple[tuple[int, tuple[str, ...]], ...]) -> dict[str, int]:
    return {alias.lower(): ident for ident, aliases in table for alias in aliases}


_CACHE_BY_ALIAS = _lookup(_CACHE_NAMES)
_OP_BY_ALIAS = _lookup(_CACHE_OPS)
_RESULT_BY_ALIAS = _lookup(_CACHE_RESULTS)


def cache_config(cache: int, op: int, result: int) -> int:
    return cache | (op << 8) | (result << 16)


def _build_cache_events() -> dict[str, int]:
    """The canonical names ``perf list`` prints for the cache matrix, e.g. ``L1-dcache-load-misses``."""
    out: dict[str, int] = {}
    for cache, aliases in _CACHE_NAMES:
        for op in sorted(_CACHE_VALID_OPS[cache]):
            out[f"{aliases[0]}-{_OP_PLURAL[op]}"] = cache_config(
                cache, op, _abi.PERF_COUNT_HW_CACHE_RESULT_ACCESS
            )
            out[f"{aliases[0]}-{_OP_SINGULAR[op]}-misses"] = cache_config(
                cache, op, _abi.PERF_COUNT_HW_CACHE_RESULT_MISS
            )
    return out


CACHE_EVENTS: dict[str, int] = _build_cache_events()


def _parse_cache_name(name: str) -> int | None:
    """perf's cache grammar: ``<cache>[-<op|result>[-<op|result>]]`` with default op read, result access.

    The cache part may itself contain dashes (``L1-dcache``), so every split point is tried.
    """
    low = name.lower()
    for cache_alias, cache in _CACHE_BY_ALIAS.items():
        if low != cache_alias and not low.startswith(cache_alias + "-"):
            continue
        rest = low[len(cache_alias) + 1 :].split("-") if low != cache_alias else []
        op: int | None = None
        result: int | None = None
        words = _join_multiword(rest)
        if words is None or len(words) > 2:
            continue
        ok = True
        for word in words:
            if word in _OP_BY_ALIAS and op is None:
                op = _OP_BY_ALIAS[word]
            elif word in _RESULT_BY_ALIAS and result is None:
                result = _RESULT_BY_ALIAS[word]
            else:
                ok = False
                break
        if not ok:
            continue
        op = _R if op is None else op
        if op not in _CACHE_VALID_OPS[cache]:
            continue
        return cache_config(cache, op, _abi.PERF_COUNT_HW_CACHE_RESULT_ACCESS if result is None else result)
    return None


def _join_multiword(parts: list[str]) -> list[str] | None:
    """Re-join the two-word op aliases (``speculative-read``) that the split on '-' tore apart."""
    out: list[str] = []
    i = 0
    while i < len(parts):
        if parts[i] == "speculative" and i + 1 < len(parts):
            out.append(f"speculative-{parts[i + 1]}")
            i += 2
            continue
        if not parts[i]:
            return None
        out.append(parts[i])
        i += 1
    return out


class UnknownEventError(ValueError):
    """An event name nothing here knows; ``suggestions`` holds the closest known names."""

    def __init__(self, name: str, suggestions: list[str], detail: str | None = None) -> None:
        self.name = name
        self.suggestions = suggestions
        msg = detail or f"unknown event {name!r}"
        if suggestions:
            msg += f"; did you mean {', '.join(suggestions)}?"
        msg += " (`perfpulse check` lists what this machine can count)"
        super().__init__(msg)


class EventSyntaxError(ValueError):
    """A name that parses as an event but whose terms or modifiers are wrong."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What to put into perf_event_attr for one named event, and where it may be opened.

    ``cpus`` (when not None) are the only CPUs the event may open on: an uncore/RAPL PMU's ``cpumask`` (one
    CPU per socket) or a hybrid core PMU's ``cpus``. ``scale``/``unit`` come from sysfs ``.scale``/``.unit``.
    """

    name: str
    type: int
    config: int
    config1: int = 0
    config2: int = 0
    pmu: str | None = None
    exclude_user: bool = False
    exclude_kernel: bool = False
    exclude_hv: bool = False
    scale: float = 1.0
    unit: str | None = None
    cpus: tuple[int, ...] | None = None
    config3: int = 0
    uncore: bool = False
    core: bool = False

    @property
    def is_software(self) -> bool:
        return self.type == _abi.PERF_TYPE_SOFTWARE

    @property
    def is_hardware(self) -> bool:
        """Events that occupy a core PMU counter (generic, cache, raw, or a core PMU's own events)."""
        return self.core or (
            not self.uncore
            and self.type in (_abi.PERF_TYPE_HARDWARE, _abi.PERF_TYPE_HW_CACHE, _abi.PERF_TYPE_RAW)
        )

    @property
    def group_key(self) -> str:
        """Events with the same key may share a group: a group lives on one PMU (software aside).

        Generic, cache, raw and ``cpu/.../`` events all land on the one core PMU of a homogeneous
        machine; on hybrid and big.LITTLE machines each core PMU (the ones with their own ``cpus``)
        is separate.
        """
        if self.is_software:
            return "software"
        if self.type == _abi.PERF_TYPE_TRACEPOINT:
            return "tracepoint"
        if self.is_hardware:
            return f"core:{self.pmu}" if self.pmu is not None and self.cpus is not None else "core:"
        return f"pmu:{self.pmu or self.type}"

    def to_attr(self) -> _abi.PerfEventAttr:
        """A fresh attr with the event's identity and privilege filters; the caller adds read format and
        the enable/inherit policy."""
        attr = _abi.PerfEventAttr(
            type=self.type,
            config=self.config,
            config1=self.config1,
            config2=self.config2,
            config3=self.config3,
        )
        attr.exclude_user = int(self.exclude_user)
        attr.exclude_kernel = int(self.exclude_kernel)
        attr.exclude_hv = int(self.exclude_hv)
        return attr

    def with_user_only(self) -> EventSpec:
        """The ``:u`` variant: what an unprivileged process may count at paranoid 2."""
        return replace(self, exclude_kernel=True, exclude_hv=True)


_MODIFIER_RE = re.compile(r"^[ukh]+$")


def _apply_modifiers(spec: EventSpec, mods: str, text: str) -> EventSpec:
    if not mods:
        return spec
    if not _MODIFIER_RE.match(mods):
        bad = sorted(set(mods) - set("ukh"))
        raise EventSyntaxError(
            f"event {text!r}: unsupported modifier(s) {''.join(bad)!r}; counting supports u (user), "
            "k (kernel) and h (hypervisor)"
        )
    if spec.uncore:
        raise EventSyntaxError(
            f"event {text!r}: {spec.pmu} counts the whole socket and cannot filter by privilege level; "
            "drop the modifier"
        )
    return replace(
        spec,
        exclude_user="u" not in mods,
        exclude_kernel="k" not in mods,
        exclude_hv="h" not in mods,
    )


def _int(value: str, text: str) -> int:
    try:
        return int(value, 0)
    except ValueError:
        raise EventSyntaxError(f"event {text!r}: {value!r} is not a number") from None


def generic_names() -> list[str]:
    """Every name the generic tables accept in their canonical spelling (for suggestions and listings)."""
    return [*HARDWARE_EVENTS, *CACHE_EVENTS, *SOFTWARE_EVENTS]


def _generic(base: str) -> tuple[int, int] | None:
    """(type, config) of a generic name, or None."""
    low = base.lower()
    if low in HARDWARE_EVENTS:
        return _abi.PERF_TYPE_HARDWARE, HARDWARE_EVENTS[low]
    if low in SOFTWARE_EVENTS:
        return _abi.PERF_TYPE_SOFTWARE, SOFTWARE_EVENTS[low]
    cfg = _parse_cache_name(base)
    if cfg is not None:
        return _abi.PERF_TYPE_HW_CACHE, cfg
    return None


def _is_hybrid(pmus: Mapping[str, Pmu]) -> bool:
    return len(core_pmus(pmus)) > 1


def _instances(pmus: Mapping[str, Pmu], name: str) -> list[Pmu]:
    """PMUs perf would match for ``name``: the exact one, else ``<name>_<n>`` instances (uncore boxes)."""
    if name in pmus:
        return [pmus[name]]
    pattern = re.compile(re.escape(name) + r"_[0-9a-fA-Fx]+$")
    found = [p for p in pmus.values() if pattern.match(p.name)]

    def key(p: Pmu) -> tuple[int, str]:
        suffix = p.name.rsplit("_", 1)[1]
        return (int(suffix) if suffix.isdigit() else 1 << 30, p.name)

    return sorted(found, key=key)


def _candidates(pmus: Mapping[str, Pmu] | None) -> list[str]:
    names = generic_names()
    if pmus:
        for pmu in pmus.values():
            names.extend(f"{pmu.name}/{ev}/" for ev in pmu.events)
    return names


def _suggest(name: str, pmus: Mapping[str, Pmu] | None) -> list[str]:
    return difflib.get_close_matches(name, _candidates(pmus), n=5, cutoff=0.6)


def _parse_pmu_event(text: str, pmu: Pmu, body: str, mods: str, pmus: Mapping[str, Pmu]) -> EventSpec:
    words = dict.fromkeys(CONFIG_WORDS, 0)
    name = text
    scale = 1.0
    unit: str | None = None
    terms = [t.strip() for t in body.split(",") if t.strip()]
    if not terms:
        raise EventSyntaxError(f"event {text!r}: no terms between the slashes")

    # A lone generic name on a core PMU: the legacy encoding, with the extended type on hybrid systems.
    # perf's legacy names win over a same-named sysfs alias, so ``cpu_core/instructions/`` and the
    # expansion of ``instructions`` on a hybrid machine are the same event.
    if len(terms) == 1 and "=" not in terms[0] and pmu.is_core:
        generic = _generic(terms[0])
        if generic is not None and generic[0] != _abi.PERF_TYPE_SOFTWARE:
            ev_type, config = generic
            if _is_hybrid(pmus):
                config |= pmu.type << _abi.PERF_PMU_TYPE_SHIFT
            spec = EventSpec(name=text, type=ev_type, config=config, pmu=pmu.name, cpus=pmu.cpus, core=True)
            return _apply_modifiers(spec, mods, text)

    def set_term(key: str, raw_value: str | None, origin: str) -> None:
        nonlocal name
        if key == "name":
            if not raw_value:
                raise EventSyntaxError(f"event {text!r}: name= needs a value")
            name = raw_value
            return
        if raw_value == "?":
            raise EventSyntaxError(
                f"event {text!r}: term {key!r} (from {origin}) needs a value, e.g. {key}=1"
            )
        value = 1 if raw_value is None else _int(raw_value, text)
        if key in CONFIG_WORDS:
            words[key] = value
            return
        field = pmu.formats.get(key)
        if field is None:
            known = sorted([*pmu.formats, *pmu.events, *CONFIG_WORDS])
            close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; known terms: {', '.join(known)}"
            raise EventSyntaxError(f"event {text!r}: PMU {pmu.name} has no term {key!r}{hint}")
        try:
            encoded = field.encode(value)
        except ValueError as exc:
            raise EventSyntaxError(f"event {text!r}: {exc}") from None
        mask = field.encode(field.max_value)
        words[field.word] = (words[field.word] & ~mask) | encoded

    for term in terms:
        key, eq, value = term.partition("=")
        key = key.strip()
        if not eq and key in pmu.events:
            ev = pmu.events[key]
            scale, unit = ev.scale, ev.unit
            for sub in (s.strip() for s in ev.terms.split(",") if s.strip()):
                k, e, v = sub.partition("=")
                set_term(k.strip(), v.strip() if e else None, f"{pmu.name}/events/{key}")
            continue
        raw_term = _RAW_SYNTAX.match(key) if not eq and key not in pmu.formats else None
        if raw_term is not None:  # ``cpu_core/r01c2/``: a raw code on a named PMU, as perf accepts
            words["config"] = int(raw_term.group("hex"), 16)
            continue
        if not eq and key not in pmu.formats and key not in CONFIG_WORDS and key != "name":
            raise UnknownEventError(
                text,
                difflib.get_close_matches(
                    f"{pmu.name}/{key}/", [f"{pmu.name}/{e}/" for e in pmu.events], n=5, cutoff=0.5
                ),
                detail=f"PMU {pmu.name} has no event {key!r}",
            )
        set_term(key, value.strip() if eq else None, "the event string")

    spec = EventSpec(
        name=name,
        type=pmu.type,
        config=words["config"],
        config1=words["config1"],
        config2=words["config2"],
        config3=words["config3"],
        pmu=pmu.name,
        scale=scale,
        unit=unit,
        cpus=pmu.cpus if pmu.is_core else pmu.cpumask,
        uncore=pmu.is_uncore,
        core=pmu.is_core,
    )
    return _apply_modifiers(spec, mods, text)


_PMU_SYNTAX = re.compile(r"^(?P<pmu>[A-Za-z0-9_.\-]+)/(?P<body>[^/]*)/(?::?(?P<mods>[A-Za-z]*))$")
_RAW_SYNTAX = re.compile(r"^r(?P<hex>[0-9a-fA-F]+)$")


def parse_event(text: str, pmus: Mapping[str, Pmu] | None = None) -> EventSpec:
    """One event string to an EventSpec. ``pmus`` defaults to this machine's sysfs (read only when needed:
    for ``pmu/.../`` syntax and for suggestions)."""
    if not isinstance(text, str):
        raise TypeError(f"event name must be a string, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise EventSyntaxError("empty event name")

    m = _PMU_SYNTAX.match(text)
    if m is not None:
        known = pmus if pmus is not None else discover_pmus()
        matches = _instances(known, m.group("pmu"))
        if len(matches) != 1:
            detail = (
                f"no PMU named {m.group('pmu')!r} here"
                if not matches
                else f"{m.group('pmu')!r} matches {len(matches)} PMUs; resolve_events() expands it"
            )
            suggestions = (
                [f"{p.name}/{m.group('body')}/" for p in matches]
                if matches
                else difflib.get_close_matches(m.group("pmu"), list(known), n=5, cutoff=0.5)
            )
            raise UnknownEventError(text, suggestions, detail=detail)
        return _parse_pmu_event(text, matches[0], m.group("body"), m.group("mods") or "", known)
    if "/" in text:
        raise EventSyntaxError(f"event {text!r}: expected pmu/terms/ with a closing slash")

    base, colon, mods = text.partition(":")
    if colon and not mods:
        raise EventSyntaxError(f"event {text!r}: nothing after ':' (modifiers are u, k, h)")
    generic = _generic(base)
    if generic is not None:
        return _apply_modifiers(EventSpec(name=text, type=generic[0], config=generic[1]), mods, text)
    raw = _RAW_SYNTAX.match(base)
    if raw is not None:
        spec = EventSpec(name=text, type=_abi.PERF_TYPE_RAW, config=int(raw.group("hex"), 16))
        return _apply_modifiers(spec, mods, text)
    known = pmus if pmus is not None else discover_pmus()
    raise UnknownEventError(text, _suggest(base, known))


def resolve_events(names: Iterable[str], pmus: Mapping[str, Pmu] | None = None) -> list[EventSpec]:
    """Parse many names, expanding what needs one spec per PMU.

    On hybrid machines a generic hardware/cache name becomes ``<core pmu>/<name>/`` for each core PMU (with
    the extended type); ``uncore_imc/...`` becomes one spec per ``uncore_imc_<n>``. Other names map 1:1.
    """
    known: Mapping[str, Pmu] | None = pmus
    out: list[EventSpec] = []
    for raw_name in names:
        text = raw_name.strip()
        m = _PMU_SYNTAX.match(text)
        if m is not None:
            known = known if known is not None else discover_pmus()
            instances = _instances(known, m.group("pmu"))
            if len(instances) > 1:
                mods = m.group("mods") or ""
                for inst in instances:
                    out.append(parse_event(f"{inst.name}/{m.group('body')}/{mods}", known))
                continue
            out.append(parse_event(text, known))
            continue
        spec = parse_event(text, known)
        if spec.type in (_abi.PERF_TYPE_HARDWARE, _abi.PERF_TYPE_HW_CACHE, _abi.PERF_TYPE_RAW):
            known = known if known is not None else discover_pmus()
            cores = core_pmus(known)
            if len(cores) > 1:
                base, _, mods = text.partition(":")
                for core in cores:
                    out.append(parse_event(f"{core.name}/{base}/{mods}", known))
                continue
        out.append(spec)
    return out


def default_pmus(sysfs_root: Path = Path("/sys")) -> dict[str, Pmu]:
    """This machine's PMUs (a thin alias so callers need not import pmu.py for the common case)."""
    return discover_pmus(sysfs_root)
