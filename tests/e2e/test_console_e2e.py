"""The console protocol end to end: host client ⇄ emulated UART ⇄ firmware under MicroPython."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import pytest
import serial
from loraspot import device
from loraspot.console import codec, files
from loraspot.console.files import get_file, put_file
from loraspot.errors import DeviceError, DeviceReset, TransferError
from loraspot.flash import image

pytestmark = pytest.mark.e2e


def settle(client):
    """hello once the board has finished (re)starting: a boot event fails a pending request."""
    for _ in range(5):
        try:
            return client.hello()
        except DeviceReset:
            continue
    raise AssertionError("board keeps restarting")


def test_hello_config_across_reboot_and_events(board):
    client, hello = board.connect()
    with client:
        assert hello["proto"] == 1 and hello["board"] == "virtual" and hello["id"] == board.board.device_id
        assert hello["reset"] == "power_on"
        assert {"hello", "config.get", "config.set", "reboot", "fs.put", "fs.get", "stats"} <= set(hello["caps"])
        device.config_set(client, {"name": "pump-7", "stats_interval": 5})
        again = device.reboot(client)
        assert again["reset"] == "hard" and again["boot"] != hello["boot"]  # machine.reset(): HARD_RESET
        values = device.config_get(client)
        assert (values["name"], values["stats_interval"]) == ("pump-7", 5)
        assert device.config_get(client, "name") == {"name": "pump-7"}
        stats = client.wait_event("stats", timeout=15)
        assert stats.data["heap_free"] > 0 and stats.data["up_ms"] >= 4000


def test_pty_and_rfc2217_both_serve_and_open_close_never_resets(board):
    first = None
    for _ in range(3):
        for via in ("pty", "url"):
            client, hello = board.connect(via)
            client.close()
            first = first or hello["boot"]
            assert hello["boot"] == first
    assert board.board.boots == 1


def test_put_get_64k_with_hash_at_921600(board):
    data = random.Random(7).randbytes(64 * 1024)
    client, _ = board.connect(baud=921600)
    with client:
        put_file(client, "/data.bin", data)
        st = client.request("fs.stat", {"path": "/data.bin"})
        assert st == {"type": "f", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        assert get_file(client, "/data.bin") == data
        names = [e[0] for e in client.request("fs.ls", {"path": "/"})["entries"]]
        assert "data.bin" in names and "secrets.json" not in names
        fallbacks = client.counters.get("raw_fallbacks", 0)
    # bytes are lost only when the host machine starves the virtual board (its 260-byte FIFO
    # overruns); the transfer then went again in acknowledged chunks
    assert board.board.uart.counters["rx_dropped"] == 0 or fallbacks == 1
    assert data.count(3) > 100 and board.board.uart.counters["interrupts"] == 0  # 0x03 in raw windows is data


def test_a_raw_window_that_loses_bytes_is_sent_again_in_acknowledged_chunks(board):
    data = random.Random(8).randbytes(20 * 1024)
    client, _ = board.connect(baud=921600)
    with client:
        real = client.send_raw
        windows = []

        def lossy(piece: bytes) -> None:  # the third window loses 100 bytes on the line
            windows.append(len(piece))
            real(piece[:-100] if len(windows) == 3 else piece)

        client.send_raw = lossy  # type: ignore[method-assign]
        put_file(client, "/lossy.bin", data)
        client.send_raw = real  # type: ignore[method-assign]
        assert client.counters["raw_fallbacks"] == 1
        assert get_file(client, "/lossy.bin") == data


def test_compressible_put_is_deflated_on_the_line(board):
    data = b"".join(b"line %05d of a log that repeats itself\n" % i for i in range(1500))
    client, _ = board.connect()
    with client:
        before = board.board.uart.counters["rx_bytes"]
        put_file(client, "/log.txt", data)
        carried = board.board.uart.counters["rx_bytes"] - before
        assert get_file(client, "/log.txt") == data
    assert carried < len(data) / 3, (carried, len(data))


def test_cut_raw_window_and_corrupt_deflate_stream_keep_the_old_file(board):
    old = b"the file before\n" * 50
    client, _ = board.connect()
    with client:
        put_file(client, "/keep.bin", old)
        new = random.Random(5).randbytes(3000)
        # A window announced as 2048 bytes that gets only 1000: the device gives up after 2 s.
        client.request("fs.put", {"path": "/keep.bin", "size": len(new), "sha256": hashlib.sha256(new).hexdigest()})
        client.request("fs.data", {"off": 0, "n": 2048}, resends=0)
        client.send_raw(new[:1000])
        time.sleep(2.5)
        with pytest.raises(DeviceError) as e:
            client.request("fs.end")
        assert e.value.code == "no_transfer"
        # A deflate stream with a flipped byte: inflating fails or the hash differs, never a half file.
        z = bytearray(files.deflated(b"fresh content " * 300))
        z[len(z) // 2] ^= 0x55
        client.request("fs.put", {"path": "/keep.bin", "size": 14 * 300,
                                  "sha256": hashlib.sha256(b"fresh content " * 300).hexdigest(), "z": 12,
                                  "csize": len(z)})
        client.request("fs.data", {"off": 0, "n": len(z)}, resends=0)
        client.send_raw(bytes(z))
        with pytest.raises(DeviceError) as e:
            client.request("fs.end")
        assert e.value.code == "hash_mismatch"
        assert get_file(client, "/keep.bin") == old
        assert client.request("hello")["proto"] == 1
    fs = image.read_vfs(board.board.opts.flash)
    assert not [n for n in fs.listdir("/") if n.endswith(".part")]


def test_garbage_and_rom_noise_on_the_line_do_not_stop_the_device(board):
    client, _ = board.connect()
    with client:
        rng = random.Random(3)
        noise = bytes(b for b in rng.randbytes(3000) if b != 0x03)  # 0x03 is an interrupt, tested apart
        client.send_raw(noise + b"\n")
        client.send_raw(b"ets Jun  8 2016 00:22:57\r\n\r\nrst:0x1 (POWERON_RESET),boot:0x13\r\n~{half a frame")
        client.send_raw(b"\n")
        time.sleep(1.5)
        assert client.request("hello")["proto"] == 1
        assert client.request("stats")["rx_frames"] >= 2


def test_bad_frames_get_coded_errors(board):
    client, _ = board.connect()
    with client:
        line = bytearray(codec.encode({"id": 99, "op": "hello"}))
        line[-2] = ord("0") if line[-2] != ord("0") else ord("1")
        client.send_raw(bytes(line))
        client.send_raw(b"~{" + b"a" * 1500 + b"}|00000000\n")
        deadline = time.monotonic() + 5
        while len(client.orphan_errors) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e["code"] for e in client.orphan_errors] == ["bad_crc", "too_long"]
        with pytest.raises(DeviceError) as e:
            client.request("warp.drive")
        assert e.value.code == "unknown_op"
        with pytest.raises(DeviceError) as e:
            client.request("fs.get", {"path": 42})
        assert e.value.code == "bad_args"
        with pytest.raises(DeviceError) as e:
            client.request("config.get", {"key": ["name"]})
        assert e.value.code == "bad_args"
        assert client.request("hello")["proto"] == 1


def test_invalid_config_is_refused_and_nothing_changes(board):
    client, _ = board.connect()
    with client:
        before = device.config_get(client)
        for bad in ({"stats_interval": 0}, {"role": "satellite"}, {"name": 12}, {"stats_interval": 10, "colour": 1}):
            with pytest.raises(DeviceError) as e:
                device.config_set(client, bad)
            assert e.value.code in ("invalid", "unknown_key")
        assert device.config_get(client) == before


def test_device_killed_mid_put_keeps_old_file(board):
    old = b"version one\n" * 100
    new = random.Random(1).randbytes(40 * 1024)
    client, _ = board.connect()
    with client:
        put_file(client, "/app.bin", old)
        sent = []

        def progress(done, total):
            sent.append(done)
            if len(sent) == 10:
                board.board.kill_firmware()

        with pytest.raises(TransferError, match="keeps its previous file"):
            put_file(client, "/app.bin", new, progress)
        board.wait_status("boot", 2)
        settle(client)
        assert get_file(client, "/app.bin") == old
    board.stop()
    fs = image.read_vfs(board.board.opts.flash)
    assert not [n for n in fs.listdir("/") if n.endswith(".part")]


def test_ctrl_c_interrupts_firmware_like_a_board(board):
    client, _ = board.connect()
    with client:
        client.send_raw(b"\x03")
        deadline = time.monotonic() + 5
        while not any("Type \"help()\"" in line for line in client.logs) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert board.board.uart.counters["interrupts"] == 1
    assert any("MicroPython" in line for line in client.logs)


def test_output_lines_end_with_crlf_like_a_board(board):
    # the port may be opened in the middle of a line the board is writing (its boot event, on a
    # busy machine): the first line read can be a tail; the answer to the hello is a whole one
    lines = []
    with serial.serial_for_url(board.info["url"], 115200, timeout=2) as port:
        port.write(codec.encode({"id": 1, "op": "hello"}))
        while not any(b'"id":1' in ln for ln in lines) and len(lines) < 20:
            raw = port.read_until(b"\n")
            assert raw, lines
            lines.append(raw)
    answer = next(ln for ln in lines if b'"id":1' in ln)
    assert answer.endswith(b"\r\n") and answer.startswith(b"~{"), answer
    assert all(ln.endswith(b"\r\n") for ln in lines), lines


def test_missing_and_busy_ports_are_typed_errors(board, tmp_path):
    from loraspot.errors import PortBusy, PortNotFound

    with pytest.raises(PortNotFound):
        device.connect(str(tmp_path / "ttyUSB9"))
    for first, second in (("pty", "pty"), ("pty", "url"), ("url", "url"), ("url", "pty")):
        held, _ = board.connect(first)
        with held, pytest.raises(PortBusy):
            device.connect(board.info[second])
    client, _ = board.connect("pty")  # free again once the holders are closed
    client.close()


def test_crash_is_logged_and_reported_after_reset(board):
    client, _ = board.connect()
    with client:
        device.config_set(client, {"stats_interval": 5})
        hook = b"import spot.app as a\n\ndef _bad(self):\n    raise RuntimeError('sensor bus stuck')\n\n" \
               b"a.App.stats_data = _bad\n"
        put_file(client, "/boot.py", hook)
        client.request("reboot")
        board.wait_status("boot", 3, timeout=30)  # reboot, then the reset after the crash
        hello = settle(client)
        assert hello["reset"] == "crash"
        assert hello["crash"]["error"] == "RuntimeError: sensor bus stuck"
        put_file(client, "/boot.py", b"")
        assert device.reboot(client)["crash"]["error"] == "RuntimeError: sensor bus stuck"


def test_listed_as_a_port_while_running(board):
    """A virtual board is announced as a port like a USB one (the virtual profile's USB id, its id
    as serial number), found by the profile matching, and gone when it stops."""
    from loraspot import transport

    ports = [p for p in transport.list_ports() if p.serial_number == board.board.device_id]
    assert [(p.vid, p.pid, p.boards) for p in ports] == [(0x1209, 0x4C53, ["virtual"])]
    board.stop()
    assert not [p for p in transport.list_ports() if p.serial_number == board.board.device_id]


def test_cli_says_busy_without_traceback(board):
    import subprocess
    import sys

    held, _ = board.connect("pty")
    with held:
        proc = subprocess.run([sys.executable, "-m", "loraspot.cli", "info", "--port", board.info["pty"]],
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "busy" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("via", ["pty", "url"])
def test_unplugged_board_is_port_gone_not_a_hang(board, via):
    from loraspot.errors import PortGone

    client, _ = board.connect(via, timeout=3)
    with client:
        board.stop()
        start = time.monotonic()
        with pytest.raises(PortGone):
            for _ in range(3):
                client.request("hello")
        assert time.monotonic() - start < 10


def test_noise_without_line_break_does_not_swallow_the_next_request(board):
    client, _ = board.connect(timeout=2)
    with client:
        for _ in range(5):
            client.send_raw(b"\x81\x82 half a line of noise ~{")
            assert client.request("hello", timeout=2)["proto"] == 1


def _firmware_processes(flash) -> list[int]:
    """Interpreters running this flash image (found by their environment)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                env = (proc / "environ").read_bytes()
            except OSError:
                continue
            if str(flash).encode() in env and b"LORASPOT_VBOARD" in env:
                pids.append(int(proc.name))
    return pids


def test_stop_right_after_start_leaves_no_firmware_running(make_board, tmp_path):
    flash = tmp_path / "race.bin"
    for _ in range(5):
        h = make_board(flash=flash)
        h.stop()
        assert _firmware_processes(flash) == []
    h = make_board(flash=flash)
    h.wait_status("boot")
    pid = h.board.firmware_pid
    assert pid and _firmware_processes(flash) == [pid]
    h.stop()
    assert _firmware_processes(flash) == []
