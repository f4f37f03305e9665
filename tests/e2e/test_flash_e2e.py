"""`loraspot flash` against virtual boards that start with erased flash: the board's ROM refuses
to boot until the MicroPython image and the app bundle are written; then it boots the app and
answers hello. Four boards in parallel with one unplugged mid-write; baud-rate fallback; the
errors a user meets (wrong chip, no download mode, busy port, no board)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
import serial
from loraspot import boards, device
from loraspot.cli.main import main
from loraspot.errors import LoraspotError, PortBusy, PortNotFound
from loraspot.flash import espimage, flasher
from loraspot.flash import image as fsimage

pytestmark = pytest.mark.e2e


def _hello(url: str, timeout: float = 20) -> dict:
    end = time.monotonic() + timeout
    while True:
        try:
            client, hello = device.connect(url, 115200)
            client.close()
            return hello
        except LoraspotError:
            if time.monotonic() > end:
                raise
            time.sleep(0.3)


def test_flash_empty_board_to_running(make_board, tmp_path, capsys):
    h = make_board(tmp_path / "blank.bin", blank=True, pty=False, register=False)
    h.wait_status("invalid_image")  # erased flash: the ROM finds no bootloader
    code = main(["--json", "flash", "--port", h.info["url"], "--board", "virtual"])
    out = capsys.readouterr().out
    assert code == 0, out
    (res,) = json.loads(out)
    assert res["ok"] and res["baud"] == 921600 and res["mac"] == h.board.device_id.upper()
    h.wait_status("boot", count=1)
    hello = _hello(h.info["url"])
    assert hello["board"] == "virtual" and hello["id"] == h.board.device_id
    # What was written is what a board holds: a valid image and the app filesystem.
    data = (tmp_path / "blank.bin").read_bytes()
    fw = espimage.read_firmware(data[0x1000:], "esp32")
    assert fw.project == espimage.PLACEHOLDER_PROJECT
    names = fsimage.read_vfs(tmp_path / "blank.bin").listdir("/")
    assert {"boot.py", "main.py", "board.json"} <= set(names)


class _Proc:
    """A virtual board in its own process (so it can be unplugged: killed)."""

    def __init__(self, flash, **opts):
        args = [sys.executable, "-m", "loraspot.cli", "--json", "sim", "board", "--flash", str(flash), "--blank",
                "--no-pty"]
        for k, v in opts.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout
        self.info = json.loads(self.p.stdout.readline())
        self.url = self.info["url"]
        threading.Thread(target=self.p.stdout.read, daemon=True).start()  # keep the pipe drained

    def kill(self) -> None:
        self.p.kill()
        self.p.wait()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def procs():
    started: list[_Proc] = []

    def start(flash, **opts):
        started.append(_Proc(flash, **opts))
        return started[-1]

    yield start
    for p in started:
        p.stop()


def test_parallel_flash_with_one_board_unplugged_mid_write(procs, tmp_path, monkeypatch):
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "run"))
    boards_ = [procs(tmp_path / f"b{i}.bin") for i in range(4)]
    bundle = flasher.build_bundle(boards.get("virtual"))
    victim = boards_[2]
    killed = threading.Event()

    def progress(port: str, cur: int, total: int, what: str) -> None:
        if port == victim.url and cur > total * 0.4 and not killed.is_set():
            killed.set()
            victim.kill()

    ports = [b.url for b in boards_]
    results = flasher.flash_many(ports, dict.fromkeys(ports, bundle), progress)
    assert killed.is_set()
    by_port = {r.port: r for r in results}
    assert [by_port[p].ok for p in ports] == [True, True, False, True]
    err = by_port[victim.url].error
    assert "stopped answering while writing" in err and "re-run loraspot flash" in err
    for b in (boards_[0], boards_[1], boards_[3]):
        assert _hello(b.url)["board"] == "virtual"
    # Plugged in again (the same flash, half written): a re-run fixes it.
    again = procs(tmp_path / "b2.bin")
    res = flasher.flash_port(again.url, bundle)
    assert res.ok, res.error
    assert _hello(again.url)["board"] == "virtual"


def test_baud_fallback_and_clear_errors(make_board, tmp_path, monkeypatch):
    slow = make_board(tmp_path / "slow.bin", blank=True, pty=False, register=False, max_baud=460800)
    bundle = flasher.build_bundle(boards.get("virtual"))
    res = flasher.flash_port(slow.info["url"], bundle)
    assert res.ok and res.baud == 460800, res.error
    assert any("921600 baud failed" in line for line in res.log)

    # An ESP32-S3 image for an ESP32 board: refused before anything is written.
    s3_profile = boards.get("lilygo-t3-s3")
    (tmp_path / "s3.bin").write_bytes(espimage.placeholder(s3_profile))
    s3 = flasher.build_bundle(s3_profile, tmp_path / "s3.bin", files={"main.py": b""})
    res = flasher.flash_port(slow.info["url"], s3, bauds=(115200,))
    assert not res.ok and "the board has an ESP32, the image is for an ESP32-S3" in res.error

    # A board without the auto-reset circuit never enters download mode by itself.
    manual = make_board(tmp_path / "manual.bin", pty=False, register=False, auto_reset=False)
    res = flasher.flash_port(manual.info["url"], bundle, connect_attempts=1)
    assert not res.ok and "not in download mode" in res.error and "BOOT" in res.error

    # A port another program holds.
    with serial.serial_for_url(manual.info["url"], 115200, timeout=0.1), pytest.raises(PortBusy):
        flasher._open(manual.info["url"], 1)
    res = flasher.flash_port("/dev/nonexistent-tty", bundle)
    assert not res.ok and "no such serial port" in res.error

    # No --port and no board detected.
    monkeypatch.setenv("LORASPOT_RUNTIME_DIR", str(tmp_path / "empty-run"))
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    with pytest.raises(PortNotFound, match="no board found"):
        flasher.resolve_targets([], False, None)


@pytest.mark.long  # a flood, a load or a whole flash: the long tier (make test stays under 10 min)
def test_backup_and_restore_whole_flash(make_board, tmp_path):
    h = make_board(tmp_path / "f.bin", pty=False, register=False)
    h.wait_status("boot")
    bauds = (2000000,)  # a whole 4 MB: at the fastest rate the stub offers
    res = flasher.backup(h.info["url"], tmp_path / "backup.bin", bauds, include_secrets=True)  # byte for byte
    assert res.ok and (tmp_path / "backup.bin").read_bytes() == (tmp_path / "f.bin").read_bytes()
    original = (tmp_path / "f.bin").read_bytes()
    with open(tmp_path / "f.bin", "r+b") as f:  # damage the board's app filesystem
        f.seek(boards.get("virtual")["flash"]["partitions"]["vfs"][0])
        f.write(b"\0" * 8192)
    flasher.restore(h.info["url"], tmp_path / "backup.bin", bauds)
    assert (tmp_path / "f.bin").read_bytes() == original
    assert _hello(h.info["url"])["board"] == "virtual"


@pytest.mark.long  # a flood, a load or a whole flash: the long tier (make test stays under 10 min)
def test_flash_and_backup_keep_a_provisioned_boards_keys(make_board, tmp_path, capsys, monkeypatch):
    """flash refuses to erase a board the inventory knows as provisioned (and records a forced
    erase); backup checks its output first, resets the board afterwards and leaves the keys out
    unless asked."""
    from loraspot.provision import provision
    from loraspot.provision.inventory import Inventory

    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    inv = tmp_path / "inv.sqlite"
    h = make_board(tmp_path / "f.bin", pty=False, register=False)
    url = h.info["url"]
    h.wait_status("boot")
    assert provision.provision_many([url], provision.Options(role="node", reboot=False), inv)[0].ok
    with Inventory(inv) as db:
        (dev,) = db.devices()
        app_key = db.secret(dev.dev_eui, "app_key")

    def boots() -> int:
        return sum(s["event"] == "boot" for s in h.status)

    # backup: the output is checked before the board is touched
    before = boots()
    code = main(["backup", "--port", url, str(tmp_path / "no-such-dir" / "b.bin")])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-dir" in err and "serial" not in err.lower() and boots() == before
    # without secrets: config and app kept, keys gone from every byte; the board runs afterwards
    code = main(["--json", "backup", "--baud", "2000000", "--port", url, str(tmp_path / "b.bin")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and "/secrets.json" in out["left_out"]
    data = (tmp_path / "b.bin").read_bytes()
    assert app_key.hex().encode() not in data and app_key.hex().upper().encode() not in data and app_key not in data
    files = fsimage.read_vfs(tmp_path / "b.bin").listdir("/")
    assert "config.json" in files and "main.py" in files and "secrets.json" not in files
    h.wait_status("boot", count=before + 1)  # reset into its firmware, not left in the bootloader
    assert _hello(url)["role"] == "node"
    # (--include-secrets: test_backup_and_restore_whole_flash, a copy byte for byte)

    # flash: refused, nothing written, the keys still on the board
    code = main(["--json", "flash", "--port", url, "--board", "virtual", "--inventory", str(inv)])
    (res,) = json.loads(capsys.readouterr().out)
    assert code == 5 and not res["ok"] and "provisioned in the inventory" in res["error"] and "--force" in res["error"]
    client, _ = device.connect(url, 115200)
    with client:
        assert "app_key" in client.request("keys.list")["keys"]
    # --force: erased, and the inventory says so; provisioning again needs no --force
    code = main(["--json", "flash", "--force", "--port", url, "--board", "virtual", "--inventory", str(inv)])
    assert code == 0, capsys.readouterr()
    with Inventory(inv) as db:
        assert db.device(dev.dev_eui).state == "registered"
    client, hello = device.connect(url, 115200)
    with client:
        assert not client.request("keys.list")["keys"] and hello["role"] == "idle"
    r = provision.provision_many([url], provision.Options(role="node", reboot=False), inv)[0]
    assert r.ok and r.dev_eui == dev.dev_eui, r.error
