"""The node role on whole virtual boards: the firmware as flashed (bytecode, role `node` in its
config, AppKey in its secrets store), virtual sensors on its I2C bus, UART and ADC, joining through
the RF medium and the test gateway to the host join server. The host twin decodes the uplinks'
Cayenne LPP and the values must be those the virtual sensors produced; deep sleep is a real
process stop and restart, and 50 cycles keep the session and FCnt."""

from __future__ import annotations

import json
import time

import pytest
from loraspot import boards
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware
from loraspot.lorawan.joinserver import JoinServer
from loraspot.lorawan.lpp import decode
from loraspot.sim.medium import Medium

from tests.e2e.conftest import ROOT
from tests.host.lorawan_gateway import Gateway

pytestmark = pytest.mark.e2e
DEV_EUI = "70B3D57ED000BEEF"
APPKEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")


def node_image(path, config: dict):
    profile = boards.get("virtual")
    cfg = {"role": "node", "dev_eui": DEV_EUI, **config}
    files = image.app_files(profile, cfg, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    files["secrets.json"] = json.dumps({"app_key": APPKEY.hex()}).encode()
    image.create_flash_image(path, profile, files)
    return path


def _wait(pred, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)


def test_node_uplinks_carry_what_the_virtual_sensors_measured(tmp_path, make_board):
    speed = 10
    js = JoinServer()
    js.add_device(DEV_EUI, APPKEY)
    flash = node_image(tmp_path / "node.bin", {"sensors": "bme280,gps,battery", "uplink_interval": 30})
    with Medium(speed=speed) as medium:
        gw = Gateway(medium, js, speed)
        try:
            h = make_board(flash, speed=speed, medium=medium.address, register=False,
                           hardware={"seed": 5, "bme280": {}, "gps": {"lat": 52.52, "lon": 13.405, "alt": 34.0},
                                     "battery": {"divider": 2.0, "mv": 3950}})
            _wait(lambda: sum("uplink" in e for e in gw.log) >= 3, 60)
        finally:
            gw.close()
    ups = [e for e in gw.log if "uplink" in e]
    assert len(ups) >= 3, (gw.log, h.status)
    assert [e["join"] for e in gw.log if "join" in e] == [DEV_EUI]
    assert [u["uplink"] for u in ups] == list(range(len(ups)))
    sensed = {name: [s for s in h.status if s["event"] == "sensor" and s["name"] == name]
              for name in ("bme280", "gps", "battery")}
    for i, up in enumerate(ups):
        values = {v["channel"]: v["value"] for v in decode(up["payload"])}
        bme, bat = sensed["bme280"][i], sensed["battery"][8 * i + 7]  # the battery is sampled 8 times a read
        # LPP resolution: 0.1 °C, 0.5 %RH, 0.1 hPa; the firmware's integer compensation is within
        # 0.01 °C / 0.05 %RH / 0.01 hPa of the datasheet's floating-point formulas the sensor model uses
        assert abs(values[1] - bme["temperature"]) <= 0.07, (values, bme)
        assert abs(values[2] - bme["humidity"]) <= 0.3, (values, bme)
        assert abs(values[3] - bme["pressure_hpa"]) <= 0.07, (values, bme)
        assert abs(values[5] - bat["volts"]) <= 0.006, (values, bat)
        fixes = {(round(f["lat"], 4), round(f["lon"], 4)) for f in sensed["gps"]}
        assert (round(values[4]["lat"], 4), round(values[4]["lon"], 4)) in fixes, (values[4], fixes)
        assert values[4]["alt"] == 34.0
    assert gw.errors == []
    assert not [s for s in h.status if s["event"] in ("heapshort", "power_cycle")]


class StarvedMedium(Medium):
    """A medium whose process is starved: every transmit-done and window-timeout answer leaves
    0.4 s late (4 s of world time at speed 10, longer than RX1 to RX2), as on a loaded machine."""

    def _send(self, addr, data: bytes) -> None:
        if data[:1] in (b"D", b"O"):
            time.sleep(0.4)
        super()._send(addr, data)


def test_a_starved_medium_costs_a_node_no_frame_and_no_reset(tmp_path, make_board):
    """The board waits for the medium's answers in world time plus host slack (a late answer is not
    a hung radio), and a window asked for after its start is still opened at that start: the join
    accept in RX2 and every confirmed uplink's ACK arrive, the node never restarts."""
    speed = 10
    js = JoinServer()
    js.add_device(DEV_EUI, APPKEY)
    flash = node_image(tmp_path / "node.bin", {"sensors": "battery", "uplink_interval": 30, "confirm_every": 1})
    with StarvedMedium(speed=speed) as medium:
        gw = Gateway(medium, js, speed)
        try:
            h = make_board(flash, speed=speed, medium=medium.address, register=False,
                           hardware={"seed": 3, "battery": {}})
            h.wait_status("boot")
            _wait(lambda: sum("uplink" in e for e in gw.log) >= 3, 120)
        finally:
            gw.close()
    ups = [e for e in gw.log if "uplink" in e]
    assert [u["uplink"] for u in ups][:3] == [0, 1, 2], (gw.log, h.status)
    assert all(u["confirmed"] for u in ups)
    assert [e["join"] for e in gw.log if "join" in e] == [DEV_EUI]
    assert [s["cause"] for s in h.status if s["event"] == "boot"] == ["power_on"], h.status
    assert gw.errors == []


@pytest.mark.long  # a flood, a load or a whole flash: the long tier (make test stays under 10 min)
def test_fifty_deep_sleep_cycles_keep_session_and_fcnt(tmp_path, make_board):
    speed = 20
    cycles = 50
    js = JoinServer()
    js.add_device(DEV_EUI, APPKEY)
    flash = node_image(tmp_path / "sleepy.bin", {"sensors": "bme280,battery", "uplink_interval": 10,
                                                 "sleep": "deep"})
    with Medium(speed=speed) as medium:
        gw = Gateway(medium, js, speed)
        try:
            h = make_board(flash, speed=speed, medium=medium.address, register=False,
                           hardware={"seed": 9, "bme280": {}, "battery": {}})
            _wait(lambda: sum("uplink" in e for e in gw.log) >= cycles + 1, 240)
        finally:
            gw.close()
    ups = [e["uplink"] for e in gw.log if "uplink" in e]
    joins = [e for e in gw.log if "join" in e]
    sleeps = [s for s in h.status if s["event"] == "deepsleep"]
    boots = [s for s in h.status if s["event"] == "boot"]
    assert len(ups) >= cycles + 1, (gw.log, h.status[-5:])
    assert len(joins) == 1, joins  # the session survived every sleep
    assert ups == list(range(len(ups)))  # strictly increasing, none skipped: FCnt came from RTC memory
    assert len(sleeps) >= cycles and all(0 < s["ms"] <= 10000 for s in sleeps), sleeps[:3]
    assert all(b["cause"] == "deepsleep" for b in boots[1:]), boots[:3]
    assert gw.errors == []
