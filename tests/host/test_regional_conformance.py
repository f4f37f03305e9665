"""Regional-parameters conformance: every value of tests/data/regional/conformance.json (transcribed
from LoRaMac-node, ChirpStack's lrwn and brocaar/lorawan, each with its file and line) checked
against the firmware's region, mac and join modules under MicroPython at the board's heap, and
against the host's copy of the same region and mac modules in CPython (what `loraspot listen`,
`decode` and the exports use)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
from loraspot.resources import firmware_module

from tests.conftest import FIRMWARE_TESTS, HEAP, firmware_env, micropython

DATA = json.loads((Path(__file__).parents[1] / "data" / "regional" / "conformance.json").read_text())
CASES = DATA["cases"]
REGIONS = sorted({c["region"] for c in CASES})
EVAL = FIRMWARE_TESTS / "regional_eval.py"

# one case per line in, one result per line out: the board's heap never holds the whole table
FIRMWARE_LOOP = """
import sys, json
from spot.lorawan import region, mac, join
while True:
    line = sys.stdin.readline()
    if not line:
        break
    print(json.dumps(run(region, mac, join, [json.loads(line)])[0]))
"""


def _mismatches(cases: list[dict], results: list) -> list[str]:
    bad = []
    for c, got in zip(cases, results, strict=True):
        want = c["expect"]
        if isinstance(got, dict) and got.get("skipped"):
            continue
        if isinstance(want, dict) and isinstance(got, dict) and "error" not in want:
            ok = all(got.get(k) == v for k, v in want.items())
        else:
            ok = got == want
        if not ok:
            what = {k: v for k, v in c.items() if k not in ("expect", "source")}
            bad.append(f"{what}: expected {want}, got {got}  [{c['source']}]")
    return bad


def _region_cases(name: str) -> list[dict]:
    return [c for c in CASES if c["region"] == name]


def test_the_table_covers_every_region_the_tool_offers_and_each_check():
    choices = set(_schema_regions())  # the config schema's choices, which provisioning offers
    assert choices == {"EU868", "US915", "AS923-1", "AS923-2", "AS923-3", "AS923-4", "CN470", "SINGLE"}
    assert choices <= set(REGIONS)
    for name in ("EU868", "US915", "AS923-1", "CN470", "SINGLE"):
        kinds = {c["check"] for c in _region_cases(name)}
        assert {"mac", "join_accept"} <= kinds, name
    # each MAC command a network sends a Class A device is exercised
    cids = {cmd.replace(" ", "")[:2].upper() for c in CASES if c["check"] == "mac" for cmd in c["cmds"]}
    assert {"03", "05", "07", "09", "0A"} <= cids
    assert all(c["source"] for c in CASES)


def _schema_regions() -> list[str]:
    schema = firmware_module("spot/schema.py")
    return list(schema.SCHEMA["region"][2])


@pytest.mark.parametrize("name", REGIONS)
def test_firmware_under_micropython_conforms(name):
    cases = _region_cases(name)
    script = EVAL.read_text() + FIRMWARE_LOOP
    proc = subprocess.run([micropython(), "-X", f"heapsize={HEAP}", "-c", script],
                          input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True, text=True,
                          env=firmware_env(False), cwd=FIRMWARE_TESTS, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(results) == len(cases)
    bad = _mismatches(cases, results)
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", REGIONS)
def test_host_region_module_conforms(name):
    spec = importlib.util.spec_from_file_location("regional_eval", EVAL)
    assert spec and spec.loader
    ev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ev)
    region = firmware_module("spot/lorawan/region.py")
    mac = firmware_module("spot/lorawan/mac.py")
    cases = _region_cases(name)
    results = ev.run(region, mac, None, cases)
    bad = _mismatches(cases, results)
    assert not bad, "\n".join(bad)
    assert any(not (isinstance(r, dict) and r.get("skipped")) for r in results)
