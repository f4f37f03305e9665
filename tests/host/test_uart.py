"""The virtual board's UART closes the ESP32 gaps: 260-byte receive FIFO, 0x03 as an interrupt
only while the firmware enables it, "\\n" sent as "\\r\\n", line rate from the baud rate."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from loraspot.sim.uart import RX_FIFO, Pacer, Uart, catches_sigint


def _drain_wait(uart: Uart, total: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while uart.counters["rx_bytes"] < total and time.monotonic() < deadline:
        time.sleep(0.01)


def test_fifo_drops_what_a_stalled_firmware_does_not_read():
    uart = Uart(921600)
    r, w = os.pipe()
    try:
        uart.attach(None, w)
        uart.from_host(b"x" * 1000)
        _drain_wait(uart, 1000)
        assert uart.counters["rx_dropped"] == 1000 - RX_FIFO
        assert len(os.read(r, 4096)) == RX_FIFO
        uart.from_host(b"y" * 100)  # the firmware has read: room again
        _drain_wait(uart, 1100)
        assert os.read(r, 4096) == b"y" * 100
    finally:
        uart.close()
        os.close(r)
        os.close(w)


def test_ctrl_c_is_an_interrupt_only_while_enabled(tmp_path):
    script = tmp_path / "wait.py"
    script.write_text(
        "import sys, time, micropython\n"
        "print('ready')\n"
        "try:\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
        "micropython.kbd_intr(-1)\n"
        "print('disabled')\n"
        "print(repr(sys.stdin.buffer.read(1)))\n"
    )
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    r, w = os.pipe()
    proc = subprocess.Popen([exe, str(script)], stdin=r, stdout=subprocess.PIPE)
    os.close(r)
    uart = Uart(115200)
    try:
        uart.attach(proc.pid, w)
        assert proc.stdout.readline() == b"ready\n"
        while not catches_sigint(proc.pid):
            time.sleep(0.01)
        uart.from_host(b"\x03")  # the process has not reached the board's scripts: plain data
        _drain_wait(uart, 1)
        assert uart.counters["interrupts"] == 0
        uart.scripts_started()
        uart.from_host(b"\x03")
        assert proc.stdout.readline() == b"interrupted\n"
        assert proc.stdout.readline() == b"disabled\n"
        uart.from_host(b"\x03")  # now plain data, as on a board with kbd_intr(-1)
        assert proc.stdout.readline() == b"b'\\x03'\n"
        assert uart.counters["interrupts"] == 1
    finally:
        uart.close()
        os.close(w)
        proc.kill()
        proc.wait()


def test_output_newlines_become_crlf_and_reach_every_endpoint():
    uart = Uart(921600)
    a: list[bytes] = []
    b: list[bytes] = []
    uart.add_sink(a.append)
    uart.add_sink(b.append)
    r, w = os.pipe()
    os.write(w, b"line one\nline two\n")
    os.close(w)
    uart.pump_output(r)
    os.close(r)
    assert b"".join(a) == b"".join(b) == b"line one\r\nline two\r\n"
    uart.close()


def test_pacer_holds_data_for_its_line_time():
    pacer = Pacer(115200)
    start = time.monotonic()
    for _ in range(10):
        pacer.wait(115)  # 1150 bytes at 11520 bytes/s
    # the cursor, not wall-clock scheduling, says when the last byte is on the wire
    assert abs((pacer._cursor - start) - 1150 * 10 / 115200) < 0.05
