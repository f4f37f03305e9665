"""The command line against virtual boards, as esptool and mpremote users expect it: the port
found when exactly one board is attached (and a clear refusal with two), deploy to every board."""

from __future__ import annotations

import json

import pytest
from loraspot.cli.main import main

pytestmark = pytest.mark.e2e


def test_the_only_board_is_found_and_two_need_a_choice(make_board, capsys, monkeypatch):
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])  # this machine's own ports stay out
    a = make_board(pty=False)
    a.wait_status("boot")
    assert main(["info", "--json"]) == 0  # no --port: the only board attached
    assert json.loads(capsys.readouterr().out)["hello"]["id"] == a.board.device_id
    b = make_board(pty=False)
    b.wait_status("boot")
    assert main(["info"]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "several boards" in err and a.info["url"] in err and b.info["url"] in err
    monkeypatch.setenv("LORASPOT_PORT", b.info["url"])  # as ESPTOOL_PORT
    assert main(["--json", "info"]) == 0
    assert json.loads(capsys.readouterr().out)["hello"]["id"] == b.board.device_id
    monkeypatch.delenv("LORASPOT_PORT")
    assert main(["--json", "deploy", "--all", "--dry-run"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert sorted(r["port"] for r in done) == sorted([a.info["url"], b.info["url"]])
    assert all(r["sent"] == [] and r["unchanged"] > 0 for r in done)  # both run the current app
