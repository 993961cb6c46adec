"""One-value sysfs attributes and CPU lists (Documentation/ABI/stable and testing)."""

from __future__ import annotations

from perfpulse.procfs import ParseError, as_text, to_int

_MAX_CPUS = 1 << 16  # far above any kernel's NR_CPUS; bounds what a corrupt list can make us allocate


def parse_int(data: bytes | str, what: str = "sysfs value") -> int:
    """A decimal attribute such as ``scaling_cur_freq`` (kHz), ``speed`` (Mb/s), ``temp1_input`` (m°C)."""
    return to_int(as_text(data, what), what)


def parse_hex(data: bytes | str, what: str = "sysfs value") -> int:
    """A ``0x``-prefixed attribute such as /sys/class/net/*/flags."""
    t = as_text(data, what).strip()
    body = t[2:] if t[:2].lower() == "0x" else t
    if not body or len(body) > 16 or not body.isascii():
        raise ParseError(f"{what}: {t[:20]!r} is not hexadecimal")
    try:
        return int(body, 16)
    except ValueError:
        raise ParseError(f"{what}: {t[:20]!r} is not hexadecimal") from None


def parse_word(data: bytes | str, what: str = "sysfs value") -> str:
    """A one-word attribute such as ``operstate`` or a dm ``name``."""
    t = as_text(data, what).strip()
    if not t or any(c.isspace() for c in t) or not t.isprintable():
        raise ParseError(f"{what}: {t[:30]!r} is not a single word")
    return t


def parse_cpu_list(data: bytes | str, what: str = "cpu list") -> list[int]:
    """``"0-3,8,10-11"`` -> ``[0, 1, 2, 3, 8, 10, 11]`` (the kernel's cpulist format); empty is valid."""
    t = as_text(data, what).strip()
    out: list[int] = []
    if not t:
        return out
    for part in t.split(","):
        lo, sep, hi = part.partition("-")
        a = to_int(lo, what)
        b = to_int(hi, what) if sep else a
        if a < 0 or b < a or b >= _MAX_CPUS:
            raise ParseError(f"{what}: bad range {part[:30]!r}")
        out.extend(range(a, b + 1))
        if len(out) > _MAX_CPUS:
            raise ParseError(f"{what}: more CPUs than any kernel supports")
    return out


def parse_line(data: bytes | str, what: str = "sysfs value") -> str:
    """A one-line text attribute that may hold spaces, such as a hwmon ``temp1_label`` ("Package id 0")."""
    t = as_text(data, what).strip()
    if not t or "\n" in t or not t.isprintable() or len(t) > 128:
        raise ParseError(f"{what}: {t[:30]!r} is not a one-line label")
    return t
