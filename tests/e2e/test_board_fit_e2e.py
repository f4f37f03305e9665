"""Real boards, part 1, on virtual boards: a radio that is out is a state the board reports while its
console stays up (and provisioning says so, leaving the inventory consistent); a role the board's
heap cannot hold is refused before anything is written to the board."""

from __future__ import annotations

import json

import pytest
from loraspot import device
from loraspot.cli.main import main
from loraspot.provision.inventory import Inventory
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import Events, free_udp_port, hotspot_image, node_image, wait

pytestmark = pytest.mark.e2e
SPEED = 10


@pytest.fixture(autouse=True)
def _master_key(monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)



def test_a_node_without_its_radio_stays_up_reports_it_and_resumes_when_it_returns(make_board, tmp_path):
    port = free_udp_port()  # the RF medium the board is wired to is not there yet: its radio is out
    h = make_board(node_image(tmp_path / "n.bin", "70B3D57ED0000001", bytes(16)), speed=SPEED, register=False,
                   medium=("127.0.0.1", port))
    ev = Events(h.info["url"])
    try:
        assert wait(lambda: sum(e.kind == "radio" and "retry_ms" in e.data for e in ev.events) >= 2, 30), ev.events
        faults = [e.data for e in ev.events if e.kind == "radio" and "retry_ms" in e.data]
        assert not faults[0]["ok"] and "no RF medium answers" in faults[0]["error"]
        assert faults[1]["retry_ms"] == 2 * faults[0]["retry_ms"]  # backing off
        hello = ev.client.hello()
        assert hello["radio"].startswith("fault: no RF medium answers"), hello["radio"]
        assert hello["reset"] != "crash" and not hello["safe_mode"]
        assert ev.client.request("stats")["radio_faults"] >= 2
        with Medium(port=port, speed=SPEED):  # the radio comes back
            assert wait(lambda: any(e.kind == "radio" and e.data["ok"] for e in ev.events), 60), ev.events
            assert wait(lambda: any(e.kind == "join" for e in ev.events), 30), ev.events  # and is used
            assert ev.client.hello()["radio"] == "ok"
        assert not any(s["event"] == "reset" and s.get("cause") == "crash" for s in h.status)
        assert not [e for e in ev.events if e.kind == "boot"]  # one boot throughout: no reset
    finally:
        ev.close()


def test_a_hotspot_without_its_radio_keeps_its_console_and_starts_when_it_returns(make_board, tmp_path):
    port = free_udp_port()
    h = make_board(hotspot_image(tmp_path / "h.bin", server_port=free_udp_port()), speed=SPEED, register=False,
                   medium=("127.0.0.1", port))
    ev = Events(h.info["url"])
    try:
        assert wait(lambda: sum(e.kind == "radio" for e in ev.events) >= 2, 30), ev.events
        faults = [e.data for e in ev.events if e.kind == "radio"]
        assert not faults[0]["ok"] and faults[1]["retry_ms"] == 2 * faults[0]["retry_ms"], faults
        hello = ev.client.hello()
        assert hello["role"] == "hotspot" and hello["radio"].startswith("fault: no RF medium answers"), hello
        assert not hello["safe_mode"] and ev.client.request("stats")["radio_faults"] >= 2
        with Medium(port=port, speed=SPEED):
            assert wait(lambda: any(e.kind == "hotspot" for e in ev.events), 60), ev.events  # started
            assert any(e.kind == "radio" and e.data["ok"] for e in ev.events)
            assert ev.client.hello()["radio"] == "ok"
        assert not [e for e in ev.events if e.kind == "boot"]
    finally:
        ev.close()


def test_provisioning_a_board_whose_radio_is_out_says_so_and_leaves_no_provisioned_row(make_board, tmp_path,
                                                                                      capsys):
    h = make_board(register=False, speed=SPEED)  # the README's first board: no RF medium given
    inv = tmp_path / "inv.sqlite"
    code = main(["--json", "provision", "--port", h.info["url"], "--role", "node", "--inventory", str(inv)])
    out = capsys.readouterr()
    assert code != 0
    (res,) = json.loads(out.out)
    assert not res["ok"] and "radio does not work" in res["error"] and "no RF medium" in res["error"], res
    with Inventory(inv) as db:
        (dev,) = db.devices()
        assert dev.state == "provisioning"  # never `provisioned` after a failed run; the keys are kept
        assert db.secret(dev.dev_eui, "app_key") is not None
    client, hello = device.connect(h.info["url"])  # the board is up, answering, and says why
    with client:
        assert hello["role"] == "node" and hello["radio"].startswith("fault: ")
        assert hello["reset"] != "crash"
    assert main(["info", "--port", h.info["url"]]) == 0  # and `info` shows it to the user
    shown = capsys.readouterr().out
    assert "radio" in shown and "fault: " in shown and "faults since boot" in shown, shown


def test_a_role_the_board_cannot_hold_is_refused_before_anything_is_written(make_board, tmp_path, capsys):
    # a virtual board standing for a TTGO LoRa32 v1: the stock ESP32_GENERIC image (no ROMFS, no
    # PSRAM) and that profile's heap budget
    h = make_board(register=False, board="ttgo-lora32-v1")
    inv = tmp_path / "inv.sqlite"
    code = main(["--json", "provision", "--port", h.info["url"], "--role", "hotspot", "--no-reboot",
                 "--server", "udp://127.0.0.1:1700", "--inventory", str(inv)])
    out = capsys.readouterr()
    assert code != 0
    (res,) = json.loads(out.out)
    err = res["error"]
    assert "hotspot-udp role does not fit board ttgo-lora32-v1" in err and "gives 112 KB with Wi-Fi on" in err, err
    assert "PSRAM" in err and "ROMFS" in err
    with Inventory(inv) as db:
        assert db.devices() == []  # no identity handed out
    client, hello = device.connect(h.info["url"])
    with client:
        assert client.request("keys.list") == {"keys": {}} and hello["role"] == "idle"
        # the same through `config set role`
    code = main(["config", "set", "--port", h.info["url"], "role", "hotspot"])
    assert code == 2 and "does not fit board ttgo-lora32-v1" in capsys.readouterr().err
    # nor the node, without Wi-Fi: the stock image loads its library into the heap
    code = main(["--json", "provision", "--port", h.info["url"], "--role", "node", "--no-reboot",
                 "--inventory", str(inv)])
    (res,) = json.loads(capsys.readouterr().out)
    assert code != 0 and "node role does not fit board ttgo-lora32-v1" in res["error"], res
    assert "gives 152 KB without Wi-Fi" in res["error"]


def test_a_board_with_psram_takes_the_role(make_board, tmp_path, capsys):
    h = make_board(register=False, board="tbeam-v1.1-sx1276")  # ESP32_GENERIC-SPIRAM: megabytes of heap
    inv = tmp_path / "inv.sqlite"
    code = main(["--json", "provision", "--port", h.info["url"], "--role", "hotspot", "--no-reboot",
                 "--server", "udp://127.0.0.1:1700", "--inventory", str(inv)])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    with Inventory(inv) as db:
        (dev,) = db.devices()
        assert dev.state == "provisioned" and dev.board == "tbeam-v1.1-sx1276"
