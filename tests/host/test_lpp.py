"""Cayenne LPP in the host twin: the documentation's examples and a vector per type, both ways;
bad payloads are refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from loraspot.lorawan import lpp

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "lpp.json").read_text())
ALL = VECTORS["examples"] + VECTORS["types"]


@pytest.mark.parametrize("vec", ALL, ids=[v["hex"] for v in ALL])
def test_vectors_decode_and_encode(vec):
    got = [[d["channel"], d["type"], d["value"]] for d in lpp.decode(bytes.fromhex(vec["hex"]))]
    assert got == vec["values"]
    assert lpp.encode([tuple(v) for v in vec["values"]]).hex().upper() == vec["hex"]


def test_names_and_units():
    d = lpp.decode(bytes.fromhex("03670110"))[0]
    assert (d["name"], d["unit"]) == ("temperature", "°C")


@pytest.mark.parametrize(("hexstr", "why"), [("03", "header cut short"), ("0367FF", "needs 2 bytes, 1 left"),
                                            ("03FE00", "unknown type 254"), ("018806765FF2960A00", "needs 9 bytes")])
def test_bad_payloads_are_refused_with_the_reason(hexstr, why):
    with pytest.raises(lpp.LppError, match=why):
        lpp.decode(bytes.fromhex(hexstr))


@given(st.lists(st.tuples(st.integers(0, 255), st.sampled_from([103, 104, 115, 2]), st.integers(0, 255)),
                max_size=20))
def test_round_trip(items):
    scaled = [(c, t, v / lpp.TYPES[t].scale) for c, t, v in items]
    back = lpp.decode(lpp.encode(scaled))
    assert [(d["channel"], d["type"], round(d["value"] * lpp.TYPES[d["type"]].scale)) for d in back] == items
