"""Pure parsers for the kernel's text files under /proc and /sys.

Every parser takes the file's content (``bytes`` or ``str``) and returns typed values; it performs no I/O, so
it can be tested against captured files and fuzzed. Malformed input raises :class:`ParseError` and nothing
else: a collector catches that one exception and reports the file as unreadable instead of crashing.
Reading the files (honouring injected roots) lives in :mod:`perfpulse.procfs.files`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = ["ParseError", "as_text", "to_float", "to_int", "to_ints"]

T = TypeVar("T")


class ParseError(ValueError):
    """The content does not have the layout the kernel documents for that file."""


def as_text(data: bytes | str, what: str = "input") -> str:
    """Decode kernel text. Latin-1 maps every byte, so decoding itself never fails; the parsers then reject
    what is not in the documented layout. NUL bytes never occur in these files and are rejected up front."""
    if isinstance(data, bytes):
        data = data.decode("latin-1")
    elif not isinstance(data, str):
        raise ParseError(f"{what}: expected bytes or str, got {type(data).__name__}")
    if "\x00" in data:
        raise ParseError(f"{what}: unexpected NUL byte")
    return data


def to_int(token: str, what: str) -> int:
    # int() alone accepts "1_000" and non-ASCII digits; the kernel writes plain ASCII decimals.
    t = token.strip()
    body = t[1:] if t[:1] == "-" else t
    if not body.isascii() or not body.isdigit() or len(body) > 40:
        raise ParseError(f"{what}: {token!r} is not an integer")
    return int(t)


def to_ints(tokens: Iterable[str], what: str) -> list[int]:
    """Many tokens at once: the fast path for the counter rows read every tick."""
    toks = list(tokens)
    try:
        out = [int(t) for t in toks]
    except ValueError:
        raise ParseError(f"{what}: non-integer field in {' '.join(toks)[:80]!r}") from None
    for t in toks:
        if not t.isascii() or len(t) > 41:
            raise ParseError(f"{what}: {t[:40]!r} is not an ASCII integer")
    return out


def to_float(token: str, what: str) -> float:
    t = token.strip()
    if not t.isascii() or len(t) > 40:
        raise ParseError(f"{what}: {token[:40]!r} is not a number")
    try:
        v = float(t)
    except ValueError:
        raise ParseError(f"{what}: {token!r} is not a number") from None
    if not math.isfinite(v):
        raise ParseError(f"{what}: {token!r} is not a finite number")
    return v


def guarded(what: str, func: Callable[[], T]) -> T:
    """Run ``func``; any IndexError/KeyError/ValueError from a layout surprise becomes a ParseError."""
    try:
        return func()
    except ParseError:
        raise
    except (IndexError, KeyError, ValueError) as exc:
        raise ParseError(f"{what}: {exc}") from None
