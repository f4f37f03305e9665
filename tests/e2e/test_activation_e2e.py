"""ABP and listen-before-talk reached the way a user reaches them: `loraspot provision
--activation abp` gives a virtual node a DevAddr and session keys (kept in the inventory like an
AppKey, never shown by the device), the node sends at once without a join, `loraspot listen`
takes its session from the inventory and the exports carry it; a node with `lbt: true` in its
config (AS923 as in Japan) hears the channel free before each uplink."""

from __future__ import annotations

import csv
import io
import json

import pytest
from loraspot import device
from loraspot.cli.main import main
from loraspot.listen.server import Listener, inventory_abp, inventory_keys
from loraspot.provision.inventory import Inventory
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import FREQ, SF, Events, flash_image, hotspot_image, wait

pytestmark = pytest.mark.e2e
SPEED = 10


def test_provisioned_abp_node_sends_without_a_join_and_exports_its_session(make_board, tmp_path, capsys,
                                                                          monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "6b" * 32)
    inv = tmp_path / "inv.sqlite"
    frames: list[dict] = []
    cfg = {"role": "idle", "single_freq": FREQ, "single_sf": SF, "sensors": "bme280", "uplink_interval": 30}
    with Medium(speed=SPEED) as medium:
        node = make_board(flash_image(tmp_path / "node.bin", cfg), pty=False, register=False, speed=SPEED,
                          medium=medium.address, hardware={"seed": 3, "bme280": {}})
        url = node.info["url"]
        assert main(["--json", "provision", "--port", url, "--role", "node", "--region", "SINGLE", "--freq", str(FREQ),
                     "--sf", str(SF), "--activation", "abp", "--repeater", "--no-reboot", "--inventory", str(inv)]) == 0
        (res,) = json.loads(capsys.readouterr().out)
        eui = res["dev_eui"]
        with Inventory(inv) as db:
            row = db.device(eui)
            nwk, app = db.secret(eui, "nwk_s_key"), db.secret(eui, "app_s_key")
            assert "app_key" not in db.secret_kinds(eui)
        assert row.dev_addr and len(row.dev_addr) == 8 and row.dev_addr.startswith(("26", "27"))
        assert inventory_keys(inv) == {} and inventory_abp(inv) == {row.dev_addr: (eui, nwk, app)}
        with Listener({}, port=0, dedup_ms=200 / SPEED, on_frame=frames.append, abp=inventory_abp(inv)) as ls:
            hs = make_board(hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1]), speed=SPEED,
                            medium=medium.address, register=False, position=(50.0, 0, 0))
            Events(hs.info["url"]).close()  # connected: the hotspot has started
            client, _hello = device.connect(url)
            with client:
                values = device.config_get(client)
                assert (values["activation"], values["dev_addr"], values["repeater"]) == ("abp", row.dev_addr, True)
                keys = json.dumps(client.request("keys.list"))
                assert nwk.hex() not in keys.lower() and app.hex() not in keys.lower()
                device.reboot(client, greet=False)
            ok = wait(lambda: any(f.get("type") == "uplink" and f.get("dev_eui") == eui and "error" not in f
                                  for f in frames), 90)
    assert ok, [(f.get("type"), f.get("error")) for f in frames]
    assert not any(f.get("type") == "join" for f in frames)  # no join: the session was given
    up = next(f for f in frames if f.get("type") == "uplink" and "error" not in f)
    assert up["devaddr"] == row.dev_addr and {v["name"] for v in up["decoded"]} >= {"temperature"}
    # every export carries the session (the keys only when asked)
    assert main(["devices", "--inventory", str(inv), "export", "--format", "csv", "--include-keys"]) == 0
    (r,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (r["activation"], r["dev_addr"], r["nwk_s_key"], r["app_s_key"]) == (
        "abp", row.dev_addr, nwk.hex().upper(), app.hex().upper())
    assert main(["devices", "--inventory", str(inv), "export", "--format", "tts-json", "--include-keys"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["supports_join"] is False and obj["session"] == {
        "dev_addr": row.dev_addr, "keys": {"app_s_key": {"key": app.hex().upper()},
                                           "f_nwk_s_int_key": {"key": nwk.hex().upper()}}}
    assert main(["devices", "--inventory", str(inv), "export", "--format", "tts-script", "--include-keys"]) == 0
    assert f"--abp --session.dev-addr {row.dev_addr}" in capsys.readouterr().out
    assert main(["devices", "--inventory", str(inv), "export", "--format", "chirpstack-csv"]) == 0
    (r,) = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (r["activation"], r["dev_addr"]) == ("abp", row.dev_addr) and nwk.hex().upper() not in json.dumps(r)


def test_lbt_from_config_listens_before_each_uplink(make_board, tmp_path):
    """AS923-1 with listen before talk: the node reads the channel (quiet: its noise floor, below
    the -80 dBm threshold) before each transmission and reports the reading with the uplink."""
    freq, sf, key, eui = 923_200_000, 7, bytes(range(16)), "70B3D57ED0000A01"
    frames: list[dict] = []
    with Medium(speed=SPEED) as medium, Listener({eui: key}, port=0, dedup_ms=200 / SPEED, on_frame=frames.append,
                                                 region="AS923-1") as ls:
        hs = make_board(hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1], region="AS923-1",
                                      single_freq=freq, single_sf=sf), speed=SPEED, medium=medium.address,
                        register=False, position=(0, 0, 0))
        Events(hs.info["url"]).close()
        cfg = {"role": "node", "dev_eui": eui, "region": "SINGLE", "single_region": "AS923-1", "single_freq": freq,
               "single_sf": sf, "lbt": True, "sensors": "bme280", "uplink_interval": 30}
        node = make_board(flash_image(tmp_path / "n.bin", cfg, {"app_key": key}), speed=SPEED, medium=medium.address,
                          register=False, position=(60.0, 0, 0), hardware={"seed": 5, "bme280": {}})
        ev = Events(node.info["url"])
        ok = wait(lambda: any(e.get("lbt_dbm") is not None and "error" not in e for e in ev.of("uplink")), 90)
        ups = [e for e in ev.of("uplink") if "error" not in e]
        ev.close()
    assert ok, ev.of("uplink")
    assert all(e["lbt_dbm"] < -80 for e in ups)  # heard free (the threshold of AS923's LBT rule)
    assert any(f.get("type") == "uplink" and f.get("dev_eui") == eui for f in frames)
