"""The chunk codec is lossless and refuses corrupt input with CodecError only."""

from __future__ import annotations

import contextlib
import math
import struct
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perfpulse.storage import codec

T0 = 1_767_225_600_000


@settings(max_examples=300, deadline=None)
@given(
    deltas=st.lists(st.integers(min_value=0, max_value=10**7), min_size=0, max_size=400),
    values=st.data(),
    first=st.integers(min_value=0, max_value=10**6),
)
def test_roundtrip_is_exact(deltas: list[int], values: st.DataObject, first: int) -> None:
    ts = [T0 + first]
    for d in deltas:
        ts.append(ts[-1] + d)
    kind = values.draw(st.sampled_from(["float", "int", "const", "decimal"]))
    n = len(ts)
    if kind == "float":
        vals = values.draw(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=n, max_size=n))
    elif kind == "int":
        vals = [float(v) for v in values.draw(st.lists(st.integers(-(2**60), 2**60), min_size=n, max_size=n))]
    elif kind == "decimal":
        vals = [v / 1000 for v in values.draw(st.lists(st.integers(-(10**9), 10**9), min_size=n, max_size=n))]
    else:
        vals = [values.draw(st.floats(allow_nan=False, allow_infinity=False))] * n
    blob = codec.encode(T0, ts, vals)
    got_ts, got_v = codec.decode(T0, blob)
    assert list(got_ts) == ts
    # Compare bit patterns: -0.0 must stay -0.0.
    assert array("d", got_v).tobytes() == array("d", vals).tobytes()


def test_negative_zero_and_extremes_survive() -> None:
    vals = [-0.0, 0.0, 5e-324, 1.7976931348623157e308, -1.0]
    ts = [T0 + i for i in range(len(vals))]
    _, got = codec.decode(T0, codec.encode(T0, ts, vals))
    assert [math.copysign(1, v) for v in got] == [math.copysign(1, v) for v in vals]
    assert list(got) == vals


def test_typical_series_are_small() -> None:
    """Regular 1 s sampling of a constant, an integer gauge and a 3-decimal ratio stay well under 4 B."""
    ts = [T0 + 1000 * i for i in range(300)]
    assert len(codec.encode(T0, ts, [7.0] * 300)) < 40
    assert len(codec.encode(T0, ts, [float(10**9 + 4096 * (i % 7)) for i in range(300)])) < 300
    assert len(codec.encode(T0, ts, [((i * 37) % 1000) / 1000 for i in range(300)])) < 4 * 300


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="as many"):
        codec.encode(T0, [T0, T0 + 1], [1.0])
    with pytest.raises(ValueError):
        codec.encode(T0, [], [])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_gives_codec_error(blob: bytes) -> None:
    with contextlib.suppress(codec.CodecError):
        codec.decode(T0, blob)


def test_truncated_and_foreign_versions_give_codec_error() -> None:
    blob = codec.encode(T0, [T0 + i * 1000 for i in range(50)], [i / 3 for i in range(50)])
    for cut in (1, 5, len(blob) // 2, len(blob) - 1):
        with pytest.raises(codec.CodecError):
            codec.decode(T0, blob[:cut])
    with pytest.raises(codec.CodecError, match="version"):
        codec.decode(T0, struct.pack("<B", 99) + blob[1:])
