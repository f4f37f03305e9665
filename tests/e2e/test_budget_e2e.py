"""The heap figures the tool judges boards by (loraspot.budget.NEED_KB) hold: each role, with its
library loaded from littlefs (a stock image) or in ROMFS, runs on a virtual board whose heap is
exactly what it is said to hold plus the headroom, the smallest budget that `budget.fit` accepts:
the node joins and sends, the hotspot's backhaul comes up, and neither resets or runs short."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from loraspot import boards, budget
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware
from loraspot.listen.server import Listener
from loraspot.lorawan.joinserver import JoinServer
from loraspot.sim.medium import Medium

from tests.broker import Broker
from tests.e2e.hotspot_world import FREQ, SF, Events, wait
from tests.host.lorawan_gateway import Gateway

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SPEED = 10


def _image(path: Path, code: str, cfg: dict, secret: dict | None = None) -> Path:
    profile = boards.get("virtual")
    if code == "littlefs":
        del profile["flash"]["partitions"]["romfs"]  # a stock image: the library goes to littlefs
    files = image.app_files(profile, cfg, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    if secret:
        files["secrets.json"] = json.dumps({k: v.hex() for k, v in secret.items()}).encode()
    image.create_flash_image(path, profile, files)
    return path


def _heap_kb(key: tuple[str, str]) -> int:
    return budget.NEED_KB[key] + budget.HEADROOM_KB


def _steady(ev: Events) -> None:
    stats = ev.client.request("stats")
    assert stats.get("role_no_memory", 0) == 0 and stats["tx_no_memory"] == 0, stats
    # no reset since the events were followed: a boot event of another boot than the one the
    # client greeted (on a busy machine the first boot's own event can come after the greeting)
    assert not [e for e in ev.events if e.kind == "boot" and e.data.get("boot") != ev.hello.get("boot")]


@pytest.mark.parametrize("display", [False, True], ids=["", "display"])
@pytest.mark.parametrize("code", ["littlefs", "romfs"])
def test_the_node_runs_in_the_heap_it_is_said_to_need(make_board, tmp_path, code, display):
    """The node, and the node with its display on (FEATURE_NEED_KB), which draws it."""
    eui, key = "70B3D57ED00000A1", bytes(range(16))
    js = JoinServer()
    js.add_device(eui, key)
    cfg = {"role": "node", "dev_eui": eui, "sensors": "bme280,gps,battery", "uplink_interval": 10,
           "display": display}
    heap_kb = budget.FEATURE_NEED_KB[("node", code, "display")] + budget.HEADROOM_KB if display else \
        _heap_kb(("node", code))
    with Medium(speed=SPEED) as medium:
        gw = Gateway(medium, js, SPEED)
        try:
            h = make_board(_image(tmp_path / "n.bin", code, cfg, {"app_key": key}), speed=SPEED,
                           medium=medium.address, register=False, heap_kb=heap_kb,
                           hardware={"bme280": {}, "gps": {}, "battery": {}})
            ev = Events(h.info["url"])
            try:
                assert wait(lambda: sum("uplink" in e for e in gw.log) >= 2, 60), (gw.log, ev.events[-5:])
                assert ev.client.hello()["radio"] == "ok"
                _steady(ev)
                # a joined node's stats name its DevAddr (the soak accounts its uplinks on the air by it)
                stats = ev.client.request("stats")
                assert stats["joined"] and stats["devaddr"].upper() in {s.devaddr_hex for s in js.sessions.values()}
                if display:  # drawn, and what it shows is the node's page: rows of pixels lit
                    assert wait(lambda: h.board.parts.screens > 0, 30)
                    assert h.board.parts.screen is not None and any(h.board.parts.screen)
            finally:
                ev.close()
        finally:
            gw.close()


@pytest.mark.parametrize("backhaul", ["udp", "mqtt"])
@pytest.mark.parametrize("code", ["littlefs", "romfs"])
def test_the_hotspot_runs_in_the_heap_it_is_said_to_need(make_board, tmp_path, code, backhaul):
    broker = Broker(tmp_path) if backhaul == "mqtt" else None
    try:
        with Listener({}, port=0, udp=broker is None, mqtt=broker.url if broker else None) as ls:
            conf = {"backhaul": "mqtt", "mqtt_port": broker.port} if broker else {"server_port": ls.address[1]}
            cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "gw_stat_interval": 10, **conf}
            with Medium(speed=SPEED) as medium:
                h = make_board(_image(tmp_path / "h.bin", code, cfg), speed=SPEED, medium=medium.address,
                               register=False, heap_kb=_heap_kb((f"hotspot-{backhaul}", code)))
                ev = Events(h.info["url"])
                try:
                    assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60), ev.events[-5:]
                    assert ev.client.hello()["radio"] == "ok"
                    _steady(ev)
                finally:
                    ev.close()
    finally:
        if broker:
            broker.stop()
