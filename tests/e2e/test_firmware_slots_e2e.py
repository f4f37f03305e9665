"""A virtual board with two app slots (the virtual-ota profile, laid out as MicroPython's
ESP32_GENERIC-OTA image: partitions-4MiB-ota.csv) runs a test main.py that uses esp32.Partition as
MicroPython documents it: the image written into the inactive slot and read back, set_boot, the
update booted on trial, rolled back by the bootloader when it was not confirmed before the next
reset, and kept once mark_app_valid_cancel_rollback confirmed it; set_boot refuses a slot without
a valid image."""

from __future__ import annotations

import json

import pytest
from loraspot import boards
from loraspot.flash import image, partitions
from loraspot.sim.mp import _votadata as od

pytestmark = pytest.mark.e2e

MAIN = r'''
import esp32, json, machine, os
run = esp32.Partition(esp32.Partition.RUNNING)
try:
    with open("/log.json") as f:
        log = json.load(f)
except OSError:
    log = []
step = len(log)
entry = {"running": run.info()[4], "boot": esp32.Partition(esp32.Partition.BOOT).info()[4]}
nxt = run.get_next_update()

def write_update():
    try:
        nxt.set_boot()  # the slot holds no image yet
        entry["unchecked"] = True
    except OSError as e:
        entry["refused"] = e.args[0]
    buf, back = bytearray(4096), bytearray(4096)
    for b in range(16):  # the running image, as a new one, into the other slot
        run.readblocks(b, buf)
        nxt.writeblocks(b, buf)
        nxt.readblocks(b, back)
        if back != buf:
            entry["verify"] = b
    nxt.set_boot()
    entry["next"] = nxt.info()[4]

if step == 0:
    write_update()       # then reset: the update boots on trial
elif step == 1:
    pass                 # on trial, never confirmed: the reset that follows rolls it back
elif step == 2:
    write_update()
elif step == 3:
    esp32.Partition.mark_app_valid_cancel_rollback()
log.append(entry)
with open("/log.json", "w") as f:
    json.dump(log, f)
if step < 4:
    machine.reset()
import time
while True:  # done: said until the host has read it (output before the port opens is lost)
    print("RESULT " + json.dumps({"steps": len(log)}))
    time.sleep(0.2)
'''


def test_the_inactive_slot_written_switched_to_rolled_back_and_confirmed(make_board, tmp_path):
    profile = boards.get("virtual-ota")
    flash = tmp_path / "ota.bin"
    image.create_flash_image(flash, profile, {"main.py": MAIN.encode()})
    h = make_board(flash, board="virtual-ota", register=False)
    boots = [h.wait_status("boot", k, timeout=60) for k in range(1, 6)]
    assert [b["slot"] for b in boots] == ["ota_0", "ota_1", "ota_0", "ota_1", "ota_1"], boots
    assert h.read_result() == {"steps": 5}
    h.stop()
    fs = image.read_vfs(flash)  # kept while its file is read
    with fs.open("/log.json", "r") as f:
        log = json.loads(f.read())
    assert [e["running"] for e in log] == ["ota_0", "ota_1", "ota_0", "ota_1", "ota_1"], log
    # set_boot on a slot without an image: ESP_ERR_OTA_VALIDATE_FAILED, as esp_ota_set_boot_partition
    assert log[0]["refused"] == -0x1503 and "unchecked" not in log[0] and "verify" not in log[0]
    assert log[0]["next"] == "ota_1" and log[2]["next"] == "ota_1"
    # what boots next, as the running update saw it: itself
    assert log[1]["boot"] == "ota_1" and log[4]["boot"] == "ota_1"
    parts = partitions.decode_partition_table(flash.read_bytes()[image.TABLE_OFFSET :][: image.TABLE_MAX])
    ota = partitions.ota_slots_of(parts)
    assert ota is not None
    otadata, slots = ota
    data = flash.read_bytes()[otadata.offset : otadata.offset + 2 * od.SECTOR]
    assert [s.label for s in slots] == ["ota_0", "ota_1"]
    assert od.state_of(data, 1, 2) == od.VALID and od.boot(data, 2) == (1, [])
    blob = flash.read_bytes()
    assert blob[slots[1].offset : slots[1].offset + 16 * 4096] == blob[slots[0].offset : slots[0].offset + 16 * 4096]


def _ota_hotspot(make_board, tmp_path, server_port: int, speed: int, medium=None):
    """A hotspot on the two-slot board with its update service on (the session's heap: the
    figure the update rule uses, plus the headroom)."""
    from loraspot import budget

    from tests.e2e.test_ota_e2e import ADMIN, _free_tcp_port, _hotspot_image

    profile = boards.get("virtual-ota")
    port = _free_tcp_port()
    flash = _hotspot_image(tmp_path / "hs.bin", server_port, port, profile)
    heap = budget.OTA_NEED_KB[("hotspot-udp", "littlefs")] + budget.HEADROOM_KB
    h = make_board(flash, board="virtual-ota", speed=speed, register=False, heap_kb=heap, medium=medium)
    return h, f"127.0.0.1:{port}", ADMIN, profile


def _new_micropython(profile: dict) -> bytes:
    """Another MicroPython application image for the board (another version in its descriptor)."""
    from loraspot.flash import espimage

    full = espimage.placeholder(profile, version="v1.29.1")
    return full[profile["flash"]["partitions"]["app"][0] - profile["image"]["offset"] :]


def test_micropython_over_the_air_is_written_booted_on_trial_and_kept(make_board, tmp_path):
    from loraspot.flash import ota
    from loraspot.listen.server import Listener
    from loraspot.sim.medium import Medium

    from tests.e2e.hotspot_world import wait
    from tests.e2e.test_ota_e2e import _answers, _greet

    with Medium(speed=20) as medium, Listener({}, port=0) as ls:
        h, target, key, profile = _ota_hotspot(make_board, tmp_path, ls.address[1], 20, medium.address)
        assert wait(lambda: _answers(target), 60)
        assert _greet(target)["slot"] == "ota_0"
        image_bytes = _new_micropython(profile)
        res = ota.deploy_firmware_ota(target, image_bytes, admin_key=key, label="mp-1.29.1", wait=120)
        assert res["slot"] == "ota_1" and res["bytes"] == len(image_bytes)
        g = _greet(target)  # (once the session that just ended has closed)
        assert (g["slot"], g["phase"]) == ("ota_1", "good")
        assert [b.get("slot") for b in h.status if b["event"] == "boot"][-1] == "ota_1"
    h.stop()
    blob = (tmp_path / "hs.bin").read_bytes()
    table = blob[image.TABLE_OFFSET :][: image.TABLE_MAX]
    ota_parts = partitions.ota_slots_of(partitions.decode_partition_table(table))
    assert ota_parts is not None
    otadata, slots = ota_parts
    assert blob[slots[1].offset : slots[1].offset + len(image_bytes)] == image_bytes  # the slot, as sent
    data = blob[otadata.offset : otadata.offset + 2 * od.SECTOR]
    assert od.state_of(data, 1, 2) == od.VALID  # confirmed to the bootloader by the health check


def test_micropython_not_confirmed_before_a_reset_is_rolled_back(make_board, tmp_path):
    # no server: the backhaul's health needs a device-minute of retrying, and the power is cut
    # as soon as the new MicroPython has booted, well before that
    from loraspot.flash import ota

    from tests.e2e.hotspot_world import free_udp_port, wait
    from tests.e2e.test_ota_e2e import _answers, _greet

    h, target, key, profile = _ota_hotspot(make_board, tmp_path, free_udp_port(), 1)
    assert wait(lambda: _answers(target), 60)
    res = ota.deploy_firmware_ota(target, _new_micropython(profile), admin_key=key, wait=0)
    assert res["slot"] == "ota_1"
    h.wait_status("boot", 2, timeout=60)
    assert [b.get("slot") for b in h.status if b["event"] == "boot"] == ["ota_0", "ota_1"]
    h.board.kill_firmware()  # before its health check could pass
    h.wait_status("boot", 3, timeout=60)
    assert [b.get("slot") for b in h.status if b["event"] == "boot"][-1] == "ota_0"
    g = _greet(target)
    assert (g["slot"], g["phase"]) == ("ota_0", "rolledback") and "not confirmed" in g["why"], g


def test_micropython_over_the_air_is_refused_on_an_image_with_one_slot(make_board, tmp_path, capsys):
    """The host says so before sending, in one line; the board itself refuses a signed header too."""
    import hashlib

    from loraspot.flash import ota

    from tests.e2e.hotspot_world import free_udp_port, wait
    from tests.e2e.test_ota_e2e import ADMIN, _answers, _free_tcp_port, _hotspot_image, _session

    port = _free_tcp_port()
    target = f"127.0.0.1:{port}"
    flash = _hotspot_image(tmp_path / "one.bin", free_udp_port(), port)
    make_board(flash, register=False, heap_kb=202)
    assert wait(lambda: _answers(target), 60)
    new = _new_micropython(boards.get("virtual-ota"))
    with pytest.raises(ota.OtaError) as e:  # not an ESP32 image: said before any board is reached
        ota.deploy_firmware_ota(f"127.0.0.1:{free_udp_port()}", b"junk" * 64, admin_key=ADMIN)
    assert str(e.value).startswith("not an application image")
    with pytest.raises(ota.OtaError) as e:
        ota.deploy_firmware_ota(target, new, admin_key=ADMIN)
    assert e.value.code == "one_slot" and "loraspot flash" in str(e.value)
    s, greet = _session(target)
    head = {"firmware": [len(new), hashlib.sha256(new).hexdigest()], "label": ""}
    s.send(json.dumps({**head, "mac": ota.sign(ADMIN, bytes.fromhex(greet["nonce"]), head)}).encode() + b"\n")
    assert s.line()["err"] == "one_slot"
    s.close()
    from loraspot.cli.main import main

    app_bin = tmp_path / "mp.app-bin"
    app_bin.write_bytes(new)
    assert main(["deploy", "--ota", target, "--firmware", str(app_bin)]) != 0
    assert main(["deploy", "--port", "/dev/null", "--firmware", str(app_bin)]) != 0  # by cable: loraspot flash
    err = capsys.readouterr().err
    assert "one app slot" in err and "loraspot flash" in err and "Traceback" not in err, err
