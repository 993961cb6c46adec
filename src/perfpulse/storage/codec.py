"""Compact encoding of one series' raw samples over one chunk of time.

A row per sample costs SQLite ~20 bytes of key and record header before the value itself; packing a few
minutes of one series into one blob brings that overhead down to a fraction of a byte per sample. The
layout is chosen for decoding speed in pure Python (every step is a C-level bytes/array operation):

- timestamps are milliseconds; stored as the first offset from the chunk start plus either one constant
  step or the array of deltas (int16 or int32), byte-shuffled and deflated;
- values are float64: a constant chunk stores one value; integral values (byte counts, page counts) store
  int64 deltas; anything else stores the float64 bit patterns. Both are byte-shuffled (all first bytes,
  then all second bytes, ...) so that deflate sees the near-constant sign/exponent bytes as long runs.

The encoding is lossless: a decoded chunk gives back exactly the floats that went in.
"""

from __future__ import annotations

import math
import operator
import struct
import sys
import zlib
from array import array
from itertools import accumulate, pairwise, repeat
from typing import Any

_VERSION = 1
# value modes
_V_CONST = 0
_V_FLOAT = 1
_V_INTDELTA = 2
_V_DECIMAL = 3  # values with at most 6 decimals (rounded by their source): scaled int64 deltas
# timestamp modes
_T_REGULAR = 0
_T_DELTA16 = 1
_T_DELTA32 = 2

_HEAD = struct.Struct("<BBBIi")  # version, ts mode, value mode, count, first offset (ms from chunk start)
_LITTLE = sys.byteorder == "little"
_INT_LIMIT = 2**53
_MAX_SAMPLES = 1_000_000  # a chunk is at most an hour; 10 Hz gives 36,000


class CodecError(ValueError):
    """A stored chunk could not be decoded (corrupt or from an unknown format version)."""


def _shuffle(raw: bytes, width: int) -> bytes:
    if width == 1:
        return raw
    return b"".join(raw[i::width] for i in range(width))


def _unshuffle(raw: bytes, width: int) -> bytes:
    if width == 1:
        return raw
    n = len(raw) // width
    out = bytearray(len(raw))
    for i in range(width):
        out[i::width] = raw[i * n : (i + 1) * n]
    return bytes(out)


def _pack(arr: array[int] | array[float]) -> bytes:
    if not _LITTLE:  # pragma: no cover - stored chunks are little-endian everywhere
        arr = array(arr.typecode, arr)
        arr.byteswap()
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    return comp.compress(_shuffle(arr.tobytes(), arr.itemsize)) + comp.flush()


def _unpack(blob: bytes, typecode: str) -> array[Any]:
    arr: array[Any] = array(typecode)
    arr.frombytes(_unshuffle(zlib.decompress(blob, -15), arr.itemsize))
    if not _LITTLE:  # pragma: no cover
        arr.byteswap()
    return arr


def _varbytes(b: bytes) -> bytes:
    return struct.pack("<I", len(b)) + b


def _as_scaled_ints(values: array[float]) -> tuple[int, list[int]] | None:
    """(k, ints) with ``ints[i] / 10**k == values[i]`` exactly for the smallest k <= 6, else None."""
    if any(v == 0 and math.copysign(1.0, v) < 0 for v in values):
        return None  # -0.0 would come back as 0.0
    probe = values[:16]
    for k in range(7):
        mult = 10**k
        # A cheap look at the first values rules out most k before the whole chunk is scaled.
        try:
            if not all(round(v * mult) / mult == v for v in probe):
                continue
        except (OverflowError, ValueError):
            return None
        try:
            scaled = [round(v * mult) for v in values]
        except (OverflowError, ValueError):
            return None
        if any(abs(i) >= _INT_LIMIT for i in scaled):
            return None
        if k == 0:
            if all(i == v for i, v in zip(scaled, values, strict=True)):
                return 0, scaled
        elif all(i / mult == v for i, v in zip(scaled, values, strict=True)):
            return k, scaled
    return None


def encode(t0: int, ts: array[int] | list[int], values: array[float] | list[float]) -> bytes:
    """One chunk: ``ts`` (ascending milliseconds, all >= ``t0``) and their ``values``."""
    n = len(ts)
    if n == 0 or n != len(values):
        raise ValueError("a chunk needs as many timestamps as values, at least one")
    first = ts[0] - t0
    deltas = [b - a for a, b in pairwise(ts)]
    if not deltas or all(d == deltas[0] for d in deltas):
        tmode = _T_REGULAR
        tpart = struct.pack("<i", deltas[0] if deltas else 0)
    elif all(0 <= d < 32768 for d in deltas):
        tmode = _T_DELTA16
        tpart = _pack(array("h", deltas))
    else:
        tmode = _T_DELTA32
        tpart = _pack(array("i", deltas))
    varr = values if isinstance(values, array) else array("d", values)
    raw = varr.tobytes()
    if raw == raw[:8] * n:  # bit-identical values (so 0.0 and -0.0 are not confused)
        vmode = _V_CONST
        vpart = struct.pack("<d", varr[0])
    else:
        vmode = _V_FLOAT
        vpart = _pack(varr)
        # -0.0 is integral but would come back as 0.0: keep the float form for it to stay lossless.
        ints = _as_scaled_ints(varr)
        if ints is not None:
            scale, scaled = ints
            idelta = [scaled[0]] + [b - a for a, b in pairwise(scaled)]
            candidate = _pack(array("q", idelta))
            if scale:
                candidate = bytes([scale]) + candidate
            if len(candidate) < len(vpart):
                vmode, vpart = (_V_DECIMAL if scale else _V_INTDELTA), candidate
    return _HEAD.pack(_VERSION, tmode, vmode, n, first) + _varbytes(tpart) + vpart


def decode(t0: int, blob: bytes) -> tuple[list[int], array[float]]:
    """The (timestamps, values) of a chunk written by :func:`encode`."""
    try:
        version, tmode, vmode, n, first = _HEAD.unpack_from(blob, 0)
        if version != _VERSION:
            raise CodecError(f"chunk format version {version} is not supported")
        if not 0 < n <= _MAX_SAMPLES:
            raise CodecError(f"corrupt chunk: {n} samples")
        pos = _HEAD.size
        (tlen,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        tpart = blob[pos : pos + tlen]
        vpart = blob[pos + tlen :]
        start = t0 + first
        if tmode == _T_REGULAR:
            (step,) = struct.unpack("<i", tpart)
            ts = list(range(start, start + step * n, step)) if step else [start] * n
        elif tmode in (_T_DELTA16, _T_DELTA32):
            deltas = _unpack(tpart, "h" if tmode == _T_DELTA16 else "i")
            # A list, not an array: callers want Python ints anyway, and this spares a conversion.
            ts = list(accumulate(deltas, initial=start))
        else:
            raise CodecError(f"unknown timestamp mode {tmode}")
        if vmode == _V_CONST:
            values = array("d", struct.unpack("<d", vpart) * n)
        elif vmode == _V_FLOAT:
            values = _unpack(vpart, "d")
        elif vmode == _V_INTDELTA:
            values = array("d", accumulate(_unpack(vpart, "q")))
        elif vmode == _V_DECIMAL:
            mult = 10 ** vpart[0]
            values = array("d", map(operator.truediv, accumulate(_unpack(vpart[1:], "q")), repeat(mult)))
        else:
            raise CodecError(f"unknown value mode {vmode}")
    except CodecError:
        raise
    except (struct.error, zlib.error, OverflowError, ValueError, IndexError, MemoryError) as exc:
        raise CodecError(f"corrupt chunk: {exc}") from exc
    if len(ts) != n or len(values) != n:
        raise CodecError(f"corrupt chunk: expected {n} samples, found {len(ts)}/{len(values)}")
    return ts, values
