"""Updates over the air are refused up front on a board whose heap cannot hold a session beside
forwarding (the figures of bench/ota.py), and where no figure was measured."""

from __future__ import annotations

import pytest
from loraspot import boards, budget


def _stock(board: str) -> dict:
    p = boards.get(board)
    p["flash"]["partitions"].pop("romfs", None)
    return p


@pytest.mark.parametrize("board", ["tbeam-v1.1-sx1276", "lilygo-t3-s3"])
def test_boards_with_psram_take_updates_over_the_air(board):
    assert budget.check_ota(_stock(board), "udp") == budget.OTA_NEED_KB[("hotspot-udp", "littlefs")]


@pytest.mark.parametrize("board", ["ttgo-lora32-v2.1", "heltec-wifi-lora32-v3", "generic-esp32-rfm95"])
def test_boards_without_psram_are_refused_with_the_figures(board):
    with pytest.raises(budget.OtaDoesNotFit) as e:
        budget.check_ota(_stock(board), "udp")
    need = budget.OTA_NEED_KB[("hotspot-udp", "littlefs")]
    assert f"{need} KB" in str(e.value) and "PSRAM" in str(e.value)


def test_what_was_not_measured_is_refused_not_guessed():
    with pytest.raises(budget.OtaDoesNotFit, match="not measured"):
        budget.check_ota(_stock("tbeam-v1.1-sx1276"), "mqtt")
    with pytest.raises(budget.OtaDoesNotFit, match="ROMFS"):
        budget.check_ota(boards.get("virtual"), "udp")


def test_config_set_refuses_ota_port_before_writing_anything():
    from loraspot import device

    class Client:
        admin_key = None
        max_request = 256

        def __init__(self):
            self.sets = []

        def hello(self):
            return {"board": "ttgo-lora32-v2.1"}

        def request(self, op, args=None, **kw):
            if op == "config.get":
                return {"key": args["key"], "value": "udp"}
            self.sets.append((op, args))
            return {"values": {}}

    c = Client()
    with pytest.raises(budget.OtaDoesNotFit):
        device.config_set(c, {"ota_port": 3232})
    assert c.sets == []
    device.config_set(c, {"ota_port": 0})  # turning it off is always allowed
    assert c.sets and c.sets[0][0] == "config.set"
