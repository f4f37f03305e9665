"""Console codec (host side) against the shared vectors, and properties of the framing."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loraspot.console import codec

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "console.json").read_text())


def test_crc_check_value():
    v = VECTORS["crc32_check"]
    assert f"{zlib.crc32(v['input'].encode()):08x}" == v["crc"]


@pytest.mark.parametrize("case", VECTORS["frames"], ids=lambda c: c["line"][:30])
def test_frame_vectors_both_ways(case):
    assert codec.decode(case["line"].encode()) == case["obj"]
    assert codec.encode(case["obj"]) == case["line"].encode() + b"\n"


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["code"] + ":" + c["line"][:20])
def test_invalid_vectors(case):
    with pytest.raises(codec.FrameError) as e:
        codec.decode(case["line"].encode())
    assert e.value.code == case["code"]


@pytest.mark.parametrize("case", VECTORS["canonical"])
def test_canonical_vectors(case):
    assert codec.canonical(case["obj"]) == case["bytes"].encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=10), json_values, max_size=5))
def test_any_object_round_trips_as_one_printable_line(obj):
    try:
        line = codec.encode(obj)
    except codec.FrameError as e:
        assert e.code == "too_long"
        return
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert all(0x20 <= b < 0x7F for b in line[:-1]), "control or non-ASCII byte in a frame"
    assert codec.decode(line[:-1]) == obj


@given(st.binary(min_size=1, max_size=200), st.integers(0, 10_000))
def test_any_single_byte_change_is_detected(noise, where):
    line = bytearray(codec.encode({"id": 5, "op": "config.set", "args": {"key": "name", "value": "abc"}})[:-1])
    i = where % len(line)
    flipped = noise[0] if noise[0] != line[i] else (noise[0] ^ 0x01)
    line[i] = flipped
    try:
        obj = codec.decode(bytes(line))
    except codec.FrameError:
        return
    raise AssertionError(f"corrupted frame accepted: {obj}")
