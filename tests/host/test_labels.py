"""Labels for a batch: the QR codes, read back from the rendered sheet with an independent decoder
(zxing-cpp), hold each board's TR005 content (The Things Stack's reading: LW:D0:JoinEUI:DevEUI:
ProfileID, then :S serial and :P proprietary); the AppKey only when asked; the pairing code is
made once per board and kept."""

from __future__ import annotations

import pytest
import zxingcpp
from loraspot.cli.main import main
from loraspot.labels import tr005
from loraspot.provision.inventory import Inventory
from PIL import Image


@pytest.fixture
def inv(inventory, monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    path = inventory
    with Inventory(path) as i:
        for n in range(1, 4):
            eui = f"70B3D57ED000000{n}"
            i.register(eui, f"24:0A:C4:00:00:0{n}", join_eui="70B3D57ED0001000", name=f"node-{n}", role="node",
                       state="provisioned")
            i.set_secret(eui, "app_key", bytes([n]) * 16)
        i.register("AA555A0000000101", "24:0A:C4:00:01:01", name="roof", role="hotspot", gateway_eui="AA555A0000000101",
                   state="provisioned")
        i.register("70B3D57ED00000FF", "24:0A:C4:00:00:FF", name="spare", role="node")  # not provisioned: no label
    return path


def _codes(paths) -> list[str]:
    out = []
    for p in paths:
        out += [r.text for r in zxingcpp.read_barcodes(Image.open(p))]
    return out


def test_tr005_text_matches_the_things_stack_format():
    # the Extensions case of lora_alliance_tr005_test.go, field for field
    text = "LW:D0:42FFFFFFFFFFFFFF:4242FFFFFFFFFFFF:42FFFF42"
    assert tr005("42FFFFFFFFFFFFFF", "4242FFFFFFFFFFFF", "42FFFF42") == text
    assert tr005("70b3d57ed0001000", "70-B3-D5-7E-D0-00-00-01", serial="240AC4000001", app_key=bytes(range(16))) == \
        "LW:D0:70B3D57ED0001000:70B3D57ED0000001:00000000:S240AC4000001:P000102030405060708090A0B0C0D0E0F"


def test_sheet_qr_codes_decode_to_each_board(inv, tmp_path, capsys):
    assert main(["labels", "--inventory", str(inv), "--out", str(tmp_path / "batch.png")]) == 0
    assert "4 label(s) on 1 page(s)" in capsys.readouterr().out
    codes = sorted(_codes([tmp_path / "batch.png"]))
    expected = sorted([f"LW:D0:70B3D57ED0001000:70B3D57ED000000{n}:00000000:S240AC400000{n}" for n in range(1, 4)]
                      + ["AA555A0000000101"])
    assert codes == expected  # no AppKey anywhere, the unprovisioned board left out
    with Inventory(inv) as i:
        first = {d.dev_eui: i.secret(d.dev_eui, "pairing_code") for d in i.devices() if d.state == "provisioned"}
    assert len(first) == 4 and all(len(c) == 14 for c in first.values()) and len(set(first.values())) == 4

    # asked for: the AppKey rides in the proprietary field; a PDF sheet; the pairing codes stay
    assert main(["--json", "labels", "--inventory", str(inv), "--dev-eui", "70B3D57ED0000002", "--with-app-key",
                 "--out", str(tmp_path / "one.png")]) == 0
    assert "P0202" not in capsys.readouterr().out  # the JSON summary never carries the key
    assert _codes([tmp_path / "one.png"]) == ["LW:D0:70B3D57ED0001000:70B3D57ED0000002:00000000:S240AC4000002:P"
                                               + "02" * 16]
    assert main(["labels", "--inventory", str(inv), "--out", str(tmp_path / "batch.pdf")]) == 0
    assert (tmp_path / "batch.pdf").read_bytes().startswith(b"%PDF")
    with Inventory(inv) as i:
        assert {e: i.secret(e, "pairing_code") for e in first} == first


def test_bad_input_is_one_line(inv, tmp_path, capsys):
    out = str(tmp_path / "x.png")
    assert main(["labels", "--inventory", str(inv), "--dev-eui", "70B3D57ED0000099", "--out", out]) == 2
    assert "not in the inventory: 70B3D57ED0000099" in capsys.readouterr().err
    assert main(["labels", "--inventory", str(inv), "--out", str(tmp_path / "x.jpg")]) == 2
    err = capsys.readouterr().err
    assert "give a .pdf or .png file" in err and "Traceback" not in err
    assert main(["labels", "--inventory", str(inv), "--profile-id", "12", "--out", str(tmp_path / "x.png")]) == 2
    assert "profile ID" in capsys.readouterr().err
