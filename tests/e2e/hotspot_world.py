"""Images and helpers for worlds of virtual nodes, virtual hotspots and `loraspot listen`."""

from __future__ import annotations

import json
import secrets
import socket
import time
from pathlib import Path

from loraspot import boards, device
from loraspot.flash import image
from loraspot.flash.mpy import compiled_firmware

from tests.e2e.conftest import ROOT

FREQ, SF = 868_100_000, 7


def flash_image(path: Path, config: dict, secret: dict | None = None) -> Path:
    profile = boards.get("virtual")
    files = image.app_files(profile, config, mpy_dir=compiled_firmware(ROOT / ".venv" / "mpy-cache"))
    if secret:
        files["secrets.json"] = json.dumps({k: v.hex() for k, v in secret.items()}).encode()
    image.create_flash_image(path, profile, files)
    return path


def hotspot_image(path: Path, **config) -> Path:
    cfg = {"role": "hotspot", "single_freq": FREQ, "single_sf": SF, "stats_interval": 5, **config}
    return flash_image(path, cfg)


def node_image(path: Path, dev_eui: str, appkey: bytes, **config) -> Path:
    cfg = {"role": "node", "dev_eui": dev_eui, "region": "SINGLE", "single_freq": FREQ, "single_sf": SF,
           "sensors": "bme280", "uplink_interval": 30, **config}
    return flash_image(path, cfg, {"app_key": appkey})


def fresh_devices(n: int) -> dict[str, bytes]:
    return {f"70B3D57ED00{i:05X}": secrets.token_bytes(16) for i in range(1, n + 1)}


def free_udp_port() -> int:
    """A UDP port on loopback that nothing listens on (a server that is not there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(pred, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Events:
    """A console client that keeps every event of one board."""

    def __init__(self, url: str):
        self.events: list[device.Event] = []
        self.client, self.hello = device.connect(url, on_event=self.events.append)

    def of(self, kind: str) -> list[dict]:
        return [e.data for e in list(self.events) if e.kind == kind]

    def close(self) -> None:
        self.client.close()
