"""Calls the ESP32 port does not have but the unix port (or the stubs) let through."""

from __future__ import annotations

import re

from tests.conftest import ROOT

# pattern, why
GAPS = [
    (r"\.hexdigest\(", "hashlib objects on the ESP32 port have no hexdigest(); use binascii.hexlify(h.digest())"),
    (r"\bcryptolib\.aes\([^)]*\b6\b", "the ESP32 port's cryptolib has no CTR mode (6)"),
    (r"\bbytes\.hex\(|\.hex\(\)", "bytes.hex() depends on a build option; use binascii.hexlify"),
    (r"\bbytes\.fromhex\(", "bytes.fromhex() depends on a build option; use binascii.unhexlify"),
    (r"\bimport (ffi|termios|_thread|fcntl)\b", "unix-only modules"),
    (r"\bos\.(system|getenv|putenv)\(", "unix-only os functions"),
    (r"\btime\.time_ns\(", "keep all firmware timing in spot.clock"),
    (r"\binput\(", "the console protocol reads the port; input() blocks the event loop"),
]


def test_firmware_avoids_calls_missing_on_esp32():
    found = []
    for path in sorted((ROOT / "firmware").rglob("*.py")):
        for no, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, why in GAPS:
                if "spot.clock" in why and path.name == "clock.py":
                    continue  # the one place timing (and the calendar clock) is read
                if re.search(pattern, code):
                    found.append(f"{path.relative_to(ROOT)}:{no}: {why}")
    assert not found, "\n".join(found)


def test_only_board_py_imports_machine():
    offenders = [p.relative_to(ROOT).as_posix() for p in (ROOT / "firmware").rglob("*.py")
                 if re.search(r"^\s*(import machine|from machine )", p.read_text(), re.M)]
    assert offenders == ["firmware/spot/board.py"]


def test_timing_goes_through_the_clock_module():
    offenders = []
    for p in (ROOT / "firmware").rglob("*.py"):
        if p.name == "clock.py":
            continue
        if re.search(r"time\.ticks_(us|ms|diff|add)\(", p.read_text()):
            offenders.append(p.name)
    assert offenders == []
