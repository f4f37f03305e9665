"""`loraspot selftest` on a batch of virtual boards running the node role, tested in parallel: each
restarts into its test boot and back into its role; a healthy board passes, and a board without its
radio, with a stuck I2C bus, without its sensor or with a low battery fails that check, with exit
status 1; every result is kept in the inventory."""

from __future__ import annotations

import json

import pytest
from loraspot import device
from loraspot.cli.main import main
from loraspot.provision.inventory import Inventory
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import free_udp_port, node_image

pytestmark = pytest.mark.e2e
SPEED = 10
HW = {"bme280": {}, "gps": {}, "battery": {}}


@pytest.fixture(autouse=True)
def _master_key(monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)



def test_a_batch_self_test(make_board, tmp_path, capsys):
    inv = tmp_path / "inv.sqlite"
    with Medium(speed=SPEED) as medium:
        def board(name: str, hardware: dict, medium_at=None):
            flash = node_image(tmp_path / f"{name}.bin", f"70B3D57ED00000{len(name):02X}", bytes(16),
                               sensors="bme280,gps,battery")
            return make_board(flash, speed=SPEED, register=False, medium=medium_at or medium.address,
                              hardware=hardware)

        boards = {"healthy": board("healthy", HW), "no_radio": board("no_radio", HW, ("127.0.0.1", free_udp_port())),
                  "stuck_i2c": board("stuck_i2c", {**HW, "i2c_stuck": True}),
                  "no_sensor": board("no_sensor", {"gps": {}, "battery": {}}),
                  "low_battery": board("low_battery", {**HW, "battery": {"mv": 3100}})}
        for h in boards.values():
            h.wait_status("boot")
        ports = [arg for h in boards.values() for arg in ("--port", h.info["url"])]
        capsys.readouterr()
        code = main(["--json", "selftest", *ports, "--inventory", str(inv)])
        out = json.loads(capsys.readouterr().out)
        assert code == 1
        by = {name: r for name, r in zip(boards, out, strict=True)}
        failing = {name: sorted(c["name"] for c in r["checks"] if not c["ok"]) for name, r in by.items()}
        assert failing == {"healthy": [], "no_radio": ["radio"], "stuck_i2c": ["bme280", "i2c"],
                           "no_sensor": ["bme280", "i2c"], "low_battery": ["battery"]}, by
        assert all(r["restarted"] and r["error"] is None for r in out), out
        assert [r["ok"] for r in out] == [True, False, False, False, False]
        checks = {c["name"]: c for c in by["healthy"]["checks"]}
        assert set(checks) == {"radio", "noise_floor", "i2c", "bme280", "gps", "battery", "filesystem", "heap"}
        assert -130 <= checks["noise_floor"]["value"] <= -90 and checks["i2c"]["detail"] == "found 0x76"
        assert "low" in {c["name"]: c for c in by["low_battery"]["checks"]}["battery"]["detail"]

        # every board went back to its role
        for h in boards.values():
            client, hello = device.connect(h.info["url"])
            client.close()
            assert (hello["role"], hello["test_boot"], hello["safe_mode"]) == ("node", False, False), hello

        # the results, with their time, in the inventory
        with Inventory(inv) as i:
            kept = i.selftests()
        assert sorted((r["mac"], r["ok"]) for r in kept) == sorted((r["id"], r["ok"]) for r in out)
        assert all(r["at"] > 0 and r["checks"] for r in kept)

        # one board, as a person reads it, on a quiet channel: the others are back in their node
        # role and join (on a busy machine their Join-Requests can fall in its noise measurement)
        for name, h in boards.items():
            if name != "healthy":
                h.stop()
        capsys.readouterr()
        assert main(["selftest", "--port", boards["healthy"].info["url"], "--inventory", str(inv)]) == 0
        text = capsys.readouterr().out
        assert "pass" in text and boards["healthy"].board.device_id.upper() in text
