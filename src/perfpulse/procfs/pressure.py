"""/proc/pressure/{cpu,memory,io,irq}: Pressure Stall Information (Documentation/accounting/psi.rst).

Each file has a ``some`` line and, for memory/io (and cpu since 5.13, irq since 6.1), a ``full`` line; irq
has only ``full``. ``avgN`` are percentages of wall time over 10/60/300 s, ``total`` is cumulative stall
time in microseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfpulse.procfs import ParseError, as_text, to_float, to_int


@dataclass(frozen=True, slots=True)
class PsiLine:
    avg10: float
    avg60: float
    avg300: float
    total_us: int


def parse_pressure(data: bytes | str) -> dict[str, PsiLine]:
    """``{"some": PsiLine, "full": PsiLine}`` with the lines the file has."""
    text = as_text(data, "pressure file")
    out: dict[str, PsiLine] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        if kind not in ("some", "full") or len(parts) != 5:
            raise ParseError(f"pressure: unexpected line {line[:60]!r}")
        fields: dict[str, str] = {}
        for p in parts[1:]:
            k, sep, v = p.partition("=")
            if not sep:
                raise ParseError(f"pressure: {p[:30]!r} is not key=value")
            fields[k] = v
        if set(fields) != {"avg10", "avg60", "avg300", "total"}:
            raise ParseError(f"pressure: unexpected keys in {line[:60]!r}")
        avgs = [to_float(fields[k], f"pressure {kind} {k}") for k in ("avg10", "avg60", "avg300")]
        total = to_int(fields["total"], f"pressure {kind} total")
        if min(avgs) < 0 or total < 0:
            raise ParseError(f"pressure {kind}: negative value")
        out[kind] = PsiLine(avgs[0], avgs[1], avgs[2], total)
    if not out:
        raise ParseError("pressure: empty file")
    return out
