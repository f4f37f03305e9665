"""OTAA join and confirmed uplinks between the firmware's LoRaWAN stack (MicroPython, virtual
radio) and the host join server, through the RF medium and a test gateway, at 10x speed."""

from __future__ import annotations

import json
import subprocess

from loraspot.lorawan.joinserver import JoinServer
from loraspot.sim.medium import Medium, airtime_module

from tests.conftest import FIRMWARE_TESTS, HEAP, firmware_env, micropython
from tests.host.lorawan_gateway import Gateway

SPEED = 10
DEV_EUI = "70B3D57ED0001234"
APPKEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")


def run_node(medium: Medium, state, dev_eui: str = DEV_EUI, appkey: bytes = APPKEY) -> list[dict]:
    env = firmware_env()
    host, port = medium.address
    proc = subprocess.run([micropython(), "-X", f"heapsize={HEAP}", str(FIRMWARE_TESTS / "lorawan_node_peer.py"),
                           host, str(port), str(SPEED), str(state), dev_eui, appkey.hex()],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert appkey.hex() not in proc.stdout + proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_otaa_join_and_confirmed_uplink_acked(tmp_path):
    js = JoinServer()
    js.add_device(DEV_EUI, APPKEY)
    with Medium(speed=SPEED) as medium:
        gw = Gateway(medium, js, SPEED)
        try:
            out = run_node(medium, tmp_path)
        finally:
            gw.close()
    joins = [o for o in out if o["event"] == "join"]
    assert joins[-1]["joined"] is True, out
    session = next(o for o in out if o["event"] == "session")
    assert session["devaddr"] == next(iter(js.sessions)).hex()
    ups = [o for o in out if o["event"] == "uplink"]
    assert [u["fcnt"] for u in ups] == [0, 1]
    assert all(u["ack"] and u["window"] == 1 for u in ups), ups
    assert [u["down_payload"] for u in ups] == [b"ok".hex()] * 2
    # the server decrypted the node's payloads with the keys both derived: the same keys
    received = [e["payload"] for e in gw.log if "uplink" in e]
    assert received == [b"temp=21.5;0", b"temp=21.5;1"]
    # time on air of each uplink is the formula for its exact size (13 + 12 bytes, no padding)
    at = airtime_module().time_on_air_us(13 + 12, 7, 125_000)
    assert all(u["airtime"] == at and u["end"] - u["start"] == at for u in ups)
    assert gw.errors == []


def test_devnonce_never_repeats_across_restarts(tmp_path):
    js = JoinServer()
    js.add_device(DEV_EUI, APPKEY)
    with Medium(speed=SPEED) as medium:
        gw = Gateway(medium, js, SPEED)
        try:
            for _ in range(2):  # same state folder: a rebooted node
                out = run_node(medium, tmp_path)
                assert any(o.get("joined") for o in out), out
        finally:
            gw.close()
    assert gw.errors == []  # the join server saw no reused DevNonce
    assert js.last_nonce[DEV_EUI] >= 1
