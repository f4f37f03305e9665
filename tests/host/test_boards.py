"""Board profiles on the host: all shipped ones load; bad ones are refused naming the field."""

from __future__ import annotations

import json

import pytest
from loraspot import boards
from loraspot.errors import BoardProfileError


def test_required_boards_ship_and_validate():
    all_ = boards.all_boards()
    for required in ("ttgo-lora32-v1", "ttgo-lora32-v2.1", "heltec-wifi-lora32-v2", "heltec-wifi-lora32-v3",
                     "tbeam-v1.1-sx1276", "tbeam-v1.1-sx1262", "lilygo-t3-s3", "generic-esp32-rfm95", "virtual"):
        assert required in all_
    assert all_["heltec-wifi-lora32-v3"]["image"]["offset"] == 0
    assert all_["ttgo-lora32-v1"]["image"]["offset"] == 0x1000
    assert all_["generic-esp32-rfm95"]["radio"]["pins"].get("dio1") is None  # unwired on that wiring


@pytest.mark.parametrize(("path", "value", "field"), [
    (("radio", "pins", "nss"), 99, "radio.pins.nss"),
    (("radio", "chip"), "cc1101", "radio.chip"),
    (("flash", "size"), 3_000_000, "flash.size"),
    (("image", "offset"), 0, "image.offset"),
    (("battery", "divider"), "two", "battery.divider"),
    (("flash", "partitions", "romfs"), [0x3F0000, 0x20000], "flash.partitions.romfs"),  # beyond the flash
    (("flash", "partitions", "romfs"), [0x1F0000, 0x20000], "flash.partitions.romfs"),  # overlaps the app
    (("flash", "partitions", "romfs"), [0x1F0000], "flash.partitions.romfs"),
])
def test_bad_profile_names_field(tmp_path, path, value, field):
    profile = boards.get("ttgo-lora32-v2.1")
    node = profile
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    f = tmp_path / "ttgo-lora32-v2.1.json"
    f.write_text(json.dumps(profile))
    with pytest.raises(BoardProfileError, match=f"'{field}'"):
        boards.load_file(f)


def test_unknown_board_lists_known_ones():
    with pytest.raises(BoardProfileError, match="heltec-wifi-lora32-v3"):
        boards.get("no-such-board")


def test_not_json_is_a_clear_error(tmp_path):
    f = tmp_path / "x.json"
    f.write_text("{nope")
    with pytest.raises(BoardProfileError, match="cannot read"):
        boards.load_file(f)


def test_usb_ids_give_candidates_not_a_single_answer():
    cp2102 = {b["id"] for b in boards.match_usb(0x10C4, 0xEA60)}
    assert {"ttgo-lora32-v1", "heltec-wifi-lora32-v2", "heltec-wifi-lora32-v3", "tbeam-v1.1-sx1276"} <= cp2102
    assert [b["id"] for b in boards.match_usb(0x303A, 0x1001)] == ["lilygo-t3-s3"]
    assert boards.match_usb(0x1234, 0x5678) == []


def test_app_slots_are_checked_on_the_host_and_left_out_of_the_boards_copy():
    ota = boards.get("virtual-ota")
    parts = ota["flash"]["partitions"]
    assert parts["otadata"] == [0xD000, 0x2000] and parts["ota_1"] == [0x190000, 0x180000]  # partitions-4MiB-ota.csv
    held = boards.device_profile(ota)
    assert "otadata" not in held["flash"]["partitions"] and "ota_1" not in held["flash"]["partitions"]
    assert boards.validate(held)["flash"]["partitions"]["app"] == parts["app"]  # what the firmware checks
    assert boards.device_profile(boards.get("virtual")) == boards.get("virtual")

    def broken(**change):
        p = json.loads(json.dumps(ota))
        p["flash"]["partitions"].update(change)
        for k, v in list(change.items()):
            if v is None:
                del p["flash"]["partitions"][k]
        return p

    for change, words in (({"ota_1": None}, "go together"), ({"ota_1": [0x180000, 0x180000]}, "overlaps app"),
                          ({"otadata": [0xD000, 0x1800]}, "multiples of 4096"),
                          ({"ota_1": [0x390000, 0x180000]}, "within the flash"), ({"otadata": "x"}, "[offset, size]")):
        with pytest.raises(BoardProfileError) as e:
            boards.validate(broken(**change), "p.json")
        assert words in str(e.value) and str(e.value).startswith("p.json: "), (change, e.value)
