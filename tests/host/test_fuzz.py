"""A sample of `make fuzz` in every run of the suite: each firmware parser under MicroPython at
112 KB takes its saved regression inputs (tests/data/fuzz) and 2,000 generated ones with a fixed
seed, without a crash or a reset (bench/fuzz.py runs 100,000 and measures heap drift)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import fuzz


@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_parser_survives_its_regression_inputs_and_a_seeded_sample(target):
    rep = fuzz.run(target, seed=20261205, count=2000, timeout=600)
    assert rep["resets"] == 0, rep["crashes"]
    assert rep["crash_count"] == 0, "\n".join(f"{c['error']}: {c['input']}" for c in rep["crashes"])
    assert rep["inputs"] == 2000 + len(fuzz.corpus(target))


def test_a_crash_found_once_stays_in_the_corpus():
    """The first crash `make fuzz` found: a ChirpStack item whose bandwidth is 1e5000 (infinite as a
    float) raised OverflowError through the MQTT downlink handler, which caught ValueError, KeyError
    and TypeError only, and would have stopped the hotspot's downlinks. It is replayed every run."""
    frames = [json.loads(bytes.fromhex(h)) for h in fuzz.corpus("chirpstack")]
    bws = [i["txInfo"]["modulation"]["lora"]["bandwidth"] for f in frames for i in f["items"]]
    assert float("inf") in bws


@pytest.mark.long
@pytest.mark.timeout(3600)  # paths runs ~150 inputs/s unloaded (a littlefs on a file per command)
@pytest.mark.parametrize("target", fuzz.TARGETS)
def test_parser_survives_a_long_sample(target):
    """The long tier: ten times the sample, with another seed."""
    rep = fuzz.run(target, seed=27, count=20_000, timeout=1800)
    assert rep["resets"] == 0, rep["crashes"]
    assert rep["crash_count"] == 0, "\n".join(f"{c['error']}: {c['input']}" for c in rep["crashes"])
