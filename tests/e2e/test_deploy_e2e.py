"""`loraspot deploy`: a board running loraspot gets only the app files that changed, over the
console protocol while its firmware runs (each written atomically, one reboot); `--via mpremote`
does the same through the raw REPL."""

from __future__ import annotations

import copy
import hashlib

import pytest
from loraspot import boards, device
from loraspot.console.files import get_file, put_file
from loraspot.errors import DeviceError
from loraspot.flash import deploy
from loraspot.flash import image as fsimage
from loraspot.flash.mpy import compile_file, compiled_firmware

from tests.e2e.conftest import ROOT

pytestmark = pytest.mark.e2e


def _layout_without_romfs() -> dict:
    """The virtual board's profile with the library in the filesystem (as the real boards' images
    have it), which is where deploy can replace single modules."""
    p = copy.deepcopy(boards.get("virtual"))
    del p["flash"]["partitions"]["romfs"]
    return p


@pytest.fixture
def fs_board(make_board, tmp_path):
    profile = _layout_without_romfs()
    files = fsimage.app_files(profile, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    fsimage.create_flash_image(tmp_path / "f.bin", profile, files)
    h = make_board(tmp_path / "f.bin", register=False, heap_kb=160)  # bytecode in the heap, not in ROMFS
    h.wait_status("boot")
    return h, files


def test_deploy_sends_only_the_changed_file(fs_board, tmp_path):
    h, files = fs_board
    url = h.info["url"]
    res = deploy.deploy(url, files)
    assert res.sent == [] and res.unchanged == len(fsimage.manifest_of(files)) and not res.rebooted

    src = tmp_path / "lpp.py"
    src.write_text((ROOT / "firmware/spot/lpp.py").read_text() + "\nDEPLOYED = 1\n")
    compile_file(src, tmp_path / "lpp.mpy", "spot/lpp.py")
    changed = dict(files)
    changed["lib/spot/lpp.mpy"] = (tmp_path / "lpp.mpy").read_bytes()
    boots = h.board.boots
    res = deploy.deploy(url, changed)
    assert res.sent == ["lib/spot/lpp.mpy"] and res.rebooted
    assert res.bytes_sent == len(changed["lib/spot/lpp.mpy"])
    assert h.board.boots == boots + 1  # one reboot
    client, _ = device.connect(url)
    try:
        st = client.request("fs.stat", {"path": "/lib/spot/lpp.mpy"})
        assert st["sha256"] == hashlib.sha256(changed["lib/spot/lpp.mpy"]).hexdigest()
        assert client.request("fs.stat", {"path": "/app.json"})["sha256"] == hashlib.sha256(
            fsimage.manifest_bytes(changed)).hexdigest()
    finally:
        client.close()
    assert deploy.deploy(url, changed).sent == []  # the manifest on the board now says so


def test_deploy_via_mpremote(fs_board):
    h, files = fs_board
    changed = dict(files)
    changed["boot.py"] = files["boot.py"] + b"# deployed through the raw REPL\n"
    h.wait_app()  # mpremote's Ctrl-C then interrupts the app
    res = deploy.via_mpremote(h.info["pty"], _layout_without_romfs(), changed)
    assert res.sent == ["boot.py"] and res.rebooted
    h.wait_status("boot", count=2)
    client, hello = device.connect(h.info["url"], attempts=6)
    client.close()
    assert hello["board"] == "virtual"
    fs = fsimage.read_vfs(h.board.opts.flash)
    with fs.open("boot.py", "rb") as f:
        assert f.read() == changed["boot.py"]


def test_deploy_refuses_library_changes_on_a_romfs_board(board):
    board.wait_status("boot")
    files = deploy.app_files(board.board.profile)
    files["lib/spot/lpp.mpy"] = b"M\x06changed"
    with pytest.raises(deploy.DeployError, match="ROMFS"):
        deploy.deploy(board.info["url"], files)


def test_whole_library_in_one_pack_and_a_bad_pack_changes_nothing(fs_board):
    h, files = fs_board
    url = h.info["url"]
    new = {k: (v + b"\0" if k.startswith("lib/") else v) for k, v in files.items()}
    res = deploy.deploy(url, new, reboot=False)
    lib = sorted(k for k in new if k.startswith("lib/"))
    assert sorted(res.sent) == lib and res.bytes_sent == sum(len(new[k]) for k in lib)
    client, _ = device.connect(url)
    try:
        for k in (lib[0], lib[-1]):
            assert client.request("fs.stat", {"path": "/" + k})["sha256"] == hashlib.sha256(new[k]).hexdigest()
        # A pack whose second entry is a protected file: refused, and its first entry not renamed in.
        pack = deploy.make_pack({"/boot.py": b"# not applied\n", "/secrets.json": b"{}"})
        put_file(client, deploy.PACK, pack)
        with pytest.raises(DeviceError) as e:
            client.request("fs.unpack", {"path": deploy.PACK})
        assert e.value.code == "denied"
        assert get_file(client, "/boot.py") == files["boot.py"]
        names = [x[0] for x in client.request("fs.ls", {"path": "/"})["entries"]]
        assert deploy.PACK[1:] not in names
    finally:
        client.close()
    fs = fsimage.read_vfs(h.board.opts.flash)
    assert not [n for n in fs.listdir("/") if n.endswith(".part")]


def test_deploy_via_mpremote_to_a_board_that_never_lets_it_in_is_one_error(production_locked):
    """A board locked in production mode keeps Ctrl-C off for good, so mpremote never gets its raw
    REPL (on a pty it waits without end): the deploy gives up after its timeout with one error."""
    h = production_locked[0]
    with pytest.raises(deploy.DeployError, match="got no answer"):
        deploy.via_mpremote(h.info["pty"], _layout_without_romfs(), timeout=10)
