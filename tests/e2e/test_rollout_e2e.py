"""A staged rollout over the air to six virtual hotspots (`loraspot deploy --all-ota --canary 2`):
a release that fails on one of the two canaries stops the rollout; that canary goes back to its
previous app by itself, the other canary keeps the new one, the four others are never touched."""

from __future__ import annotations

import json

import pytest
from loraspot.cli.main import main
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware
from loraspot.listen.server import Listener
from loraspot.provision.inventory import Inventory
from loraspot.sim.medium import Medium

from tests.e2e.conftest import ROOT
from tests.e2e.hotspot_world import FREQ, SF, wait
from tests.e2e.test_ota_e2e import HEAP_KB, _answers, _compiled, _files, _free_tcp_port, _greet, _profile

pytestmark = pytest.mark.e2e
# device time at 5x: a board's health-check window (5 device-minutes) is a minute here, which a
# busy machine's boards meet; a release that raises at start is rolled back at any speed
SPEED = 5


def _image(path, name: str, server_port: int, ota_port: int, admin: bytes):
    cfg = {"role": "hotspot", "name": name, "single_freq": FREQ, "single_sf": SF, "server_port": server_port,
           "ota_port": ota_port, "stats_interval": 5}
    files = image.app_files(_profile(), mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache")) | {
        "config.json": json.dumps(cfg).encode(), "secrets.json": json.dumps({"admin_key": admin.hex()}).encode()}
    image.create_flash_image(path, _profile(), files)
    return path


def _release_failing_on(name: str, tmp_path) -> dict[str, bytes]:
    """The app with an app module that raises at start on the board named `name` only (as a release
    can fail on one kind of board): every board gets the same files."""
    files = _files()
    src = (f"if {json.dumps(name)!r} in open('/config.json').read():\n"
           "    raise RuntimeError('this release fails on this board')\n"
           + (ROOT / "firmware" / "spot" / "app.py").read_text())
    files["lib/spot/app.mpy"] = _compiled(src, "app", tmp_path)
    return files


def test_a_canary_that_fails_stops_the_rollout_and_the_rest_is_untouched(make_board, tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    inv = tmp_path / "inv.sqlite"
    names = ["hs-bad", "hs-good"] + [f"hs-{n}" for n in range(4)]
    with Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        targets, boards = [], []
        for n, name in enumerate(names):
            port, admin = _free_tcp_port(), bytes([n + 1]) * 32
            boards.append(make_board(_image(tmp_path / f"{name}.bin", name, ls.address[1], port, admin),
                                     speed=SPEED, medium=medium.address, register=False, heap_kb=HEAP_KB))
            targets.append(f"127.0.0.1:{port}")
        assert wait(lambda: all(_answers(t) for t in targets), 90)
        before = {t: _greet(t)["app"] for t in targets}
        with Inventory(inv) as i:
            for n, t in enumerate(targets):
                eui = f"70B3D57ED00001{n:02X}"
                i.register(eui, _greet(t)["id"], board="virtual", role="hotspot")
                i.set_secret(eui, "admin_key", bytes([n + 1]) * 32)
                i.update(eui, ota=t)
        # made once: deploy asks for the files once per board, from the threads that update a stage
        failing = _release_failing_on("hs-bad", tmp_path)
        monkeypatch.setattr("loraspot.flash.deploy.app_files", lambda _profile: failing)
        code = main(["--json", "deploy", "--all-ota", "--inventory", str(inv), "--canary", "2", "--wave", "2",
                     "--health-wait", "240", "--label", "r4"])
        out = capsys.readouterr()
        assert code != 0 and "rollout stopped at the canary" in out.err and "Traceback" not in out.err, out.err
        rows = {r["target"]: r for r in json.loads(out.out)}
        bad, good, *rest = targets
        assert rows[bad]["result"] == "rolled back" and rows[bad]["stage"] == "canary", (rows[bad], boards[0].status,
                                                                                           boards[0].backlog())
        assert rows[good]["result"] == "passed" and rows[good]["stage"] == "canary", (rows[good], boards[1].status,
                                                                                        boards[1].backlog())
        assert [rows[t]["result"] for t in rest] == ["untouched"] * 4
        assert [rows[t]["stage"] for t in rest] == ["wave 1", "wave 1", "wave 2", "wave 2"]
        # as the boards themselves say it
        assert _greet(bad)["app"] == before[bad] and _greet(bad)["phase"] == "rolledback"
        new = rows[good]["app"]
        assert new != before[good] and _greet(good)["app"] == new and _greet(good)["phase"] == "good"
        for t in rest:
            g = _greet(t)
            assert g["app"] == before[t] and g["phase"] is None, g  # never staged anything
        # the same release, the failing board left out: it goes on to the end, wave by wave
        fixed = _release_failing_on("none", tmp_path)
        monkeypatch.setattr("loraspot.flash.deploy.app_files", lambda _profile: fixed)
        code = main(["--json", "deploy", *(a for t in targets[1:] for a in ("--ota", t)), "--inventory", str(inv),
                     "--canary", "1", "--wave", "3", "--health-wait", "240"])
        out = capsys.readouterr()
        assert code == 0, out.out + out.err
        rows = json.loads(out.out)
        assert [r["result"] for r in rows] == ["passed"] * 5 and len({r["app"] for r in rows}) == 1
        assert all(_greet(t)["phase"] == "good" for t in targets[1:])  # (no_memory is "try again")
