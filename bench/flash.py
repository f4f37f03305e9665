"""Flashing and deploying on virtual boards (each in its own process, UART paced at baud/10):
`loraspot flash` against the line-rate bound and against plain esptool, four boards at once
against one, `loraspot deploy` of the whole app against `mpremote fs cp` of the same files."""

from __future__ import annotations

import functools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loraspot import boards
from loraspot.console.files import deflated
from loraspot.flash import deploy, espimage, flasher
from loraspot.flash import image as fsimage
from vboards import Board

BAUD = 921600


def wrote_seconds(log: list[str]) -> float:
    return sum(float(m.group(1)) for line in log for m in [re.search(r"in ([\d.]+) seconds", line)] if m)


def main() -> None:
    global print
    print = functools.partial(print, flush=True)
    os.environ.setdefault("LORASPOT_RUNTIME_DIR", tempfile.mkdtemp())
    profile = boards.get("virtual")
    with tempfile.TemporaryDirectory() as d:
        small = flasher.build_bundle(profile)
        flash_vs_esptool(Path(d), "the virtual board's placeholder image", small)
        # A released ESP32 MicroPython image is about 1.5 MB and deflates to about two thirds: the
        # placeholder with a code segment of that size and compressibility (random runs mixed with
        # a small vocabulary of short byte strings, as machine code is).
        image = Path(d) / "sized.bin"
        image.write_bytes(espimage.placeholder(profile, code_like(1_450_000)))
        sized = flasher.build_bundle(profile, image)
        one = flash_vs_esptool(Path(d), "an image of MicroPython's size", sized)

        # Four boards at once.
        four = [Board(Path(d) / f"p{i}.bin", "--blank", "--no-pty") for i in range(4)]
        ports = [x.info["url"] for x in four]
        t = time.monotonic()
        res = flasher.flash_many(ports, dict.fromkeys(ports, sized), None, (BAUD,))
        par = time.monotonic() - t
        for x in four:
            x.stop()
        assert all(x.ok for x in res), [x.error for x in res]
        print(f"flash 4 boards in parallel (MicroPython-sized image): {par:.2f} s vs one board {one:.2f} s: "
              f"{par / one:.2f}x")

        # Deploy vs mpremote: the library of a board whose library lives in its filesystem.
        fsprof = json.loads(json.dumps(profile))
        del fsprof["flash"]["partitions"]["romfs"]
        mpy = flasher.compiled_firmware(flasher.resources.cache_dir() / "mpy-cache")
        files = fsimage.app_files(fsprof, mpy_dir=mpy)
        for baud in (115200, 921600):
            deploy_vs_mpremote(Path(d), fsprof, files, baud)


def code_like(size: int) -> bytes:
    r = random.Random(1)
    vocabulary = [r.randbytes(r.randint(2, 12)) for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        out += r.randbytes(110)
        for _ in range(16):
            out += r.choice(vocabulary)
    return bytes(out[:size])


def flash_vs_esptool(d: Path, what: str, bundle: flasher.Bundle) -> float:
    """`loraspot flash` of one board against the line-rate bound and against the esptool CLI."""
    wire = bundle.wire_bytes()
    bound = wire * 10 / BAUD
    b = Board(d / "one.bin", "--blank", "--no-pty")
    r = flasher.flash_port(b.info["url"], bundle, (BAUD,))
    b.stop()
    assert r.ok, r.error
    data_s = wrote_seconds(r.log)
    print(f"flash one board, {what}: {bundle.size} B in {len(bundle.regions)} regions, {wire} B compressed "
          "on the wire")
    print(f"  whole session {r.seconds:.2f} s (reset, sync, stub upload at 115200, baud change, write, MD5)")
    print(f"  data phase {data_s:.2f} s vs line-rate bound {bound:.2f} s at {BAUD}: {data_s / bound:.2f}x; "
          f"whole session {r.seconds / bound:.2f}x (where the data phase exceeds the line time, the flash "
          "chip's erase/program time is what bounds it)")
    paths = []
    for i, reg in enumerate(bundle.regions):
        p = d / f"r{i}.bin"
        p.write_bytes(reg.data)
        paths += [hex(reg.addr), str(p)]
    b = Board(d / "plain.bin", "--blank", "--no-pty")
    t = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "esptool", "--port", b.info["url"], "--baud", str(BAUD),
                          "write-flash", *paths], capture_output=True, text=True)
    plain = time.monotonic() - t
    b.stop()
    print(f"  plain esptool write-flash of the same regions: {plain:.2f} s (exit {out.returncode}); "
          f"loraspot flash: {r.seconds:.2f} s = {plain / r.seconds:.2f}x faster")
    return r.seconds


def mpremote_put_tree(url: str, baud: int, lib: dict[str, bytes]) -> None:
    from mpremote.transport_serial import SerialTransport

    t = SerialTransport(url, baudrate=baud)
    try:
        t.enter_raw_repl(soft_reset=False)
        for d in sorted({"/".join(("mp", *k[4:].split("/")[:i])) for k in lib for i in range(k[4:].count("/") + 1)}):
            if not t.fs_exists(d):
                t.fs_mkdir(d)
        for k, v in lib.items():
            t.fs_writefile("mp/" + k[4:], v)
        t.exit_raw_repl()
    finally:
        t.close()


def deploy_vs_mpremote(d: Path, fsprof: dict, files: dict[str, bytes], baud: int) -> None:
    flash = d / f"dep{baud}.bin"
    fsimage.create_flash_image(flash, fsprof, files)
    b = Board(flash, "--heap-kb", "200", "--baud", str(baud))
    time.sleep(3)
    # Every library file made different (one byte more; never loaded: no reboot), so all are sent.
    new = {k: (v + b"\0" if k.startswith("lib/") else v) for k, v in files.items()}
    lib = {k: v for k, v in new.items() if k.startswith("lib/")}
    t = time.monotonic()
    dep = deploy.deploy(b.info["url"], new, baud=baud, reboot=False)
    dep_s = time.monotonic() - t
    t = time.monotonic()
    nochange = deploy.deploy(b.info["url"], new, baud=baud, reboot=False)
    noch_s = time.monotonic() - t
    src = d / f"lib{baud}"
    for k, v in lib.items():
        (src / k[4:]).parent.mkdir(parents=True, exist_ok=True)
        (src / k[4:]).write_bytes(v)
    t = time.monotonic()
    if baud == 115200:  # the command line always opens the port at 115200
        mp = subprocess.run([sys.executable, "-m", "mpremote", "connect", b.info["pty"], "fs", "cp", "-r", str(src),
                             ":mp"], capture_output=True, text=True)
        how = "mpremote fs cp -r"
        if mp.returncode:
            raise SystemExit(f"mpremote failed: {mp.stderr}")
    else:
        mpremote_put_tree(b.info["url"], baud, lib)
        how = "mpremote's library (mkdir + fs_writefile, as cp -r does)"
    mp_s = time.monotonic() - t
    b.stop()
    raw = sum(len(v) for v in lib.values())
    wire = len(deflated(deploy.make_pack({"/" + k: v for k, v in lib.items()})))
    print(f"deploy at {baud} baud: {len(dep.sent)} files, {raw} B ({wire} B as one deflated pack on the line, "
          f"line-rate bound {wire * 10 / baud:.2f} s) in {dep_s:.2f} s; {how} of the same files at the same baud: "
          f"{mp_s:.2f} s: {mp_s / dep_s:.2f}x faster")
    print(f"  5x mpremote would need {raw / (mp_s / 5) / (baud / 10):.2f}x the line rate in file bytes; "
          f"deflate gives {raw / wire:.2f}x")
    print(f"  no-change deploy: {noch_s:.2f} s ({nochange.unchanged} files compared by manifest)")

if __name__ == "__main__":
    main()
