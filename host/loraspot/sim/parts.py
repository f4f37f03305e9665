"""The virtual board's own parts beyond its radio and sensors: the port of its web server (80 on a
board), its button, its SSD1306 display (the panel's model runs here, in the supervisor, fed by the
firmware's I2C writes) and its Wi-Fi access point (loraspot.sim.air). VirtualBoard holds one."""

from __future__ import annotations

import contextlib
import json
import random
import socket
from collections.abc import Callable
from pathlib import Path

from loraspot import localports
from loraspot.sim.air import AccessPoint
from loraspot.sim.mp import _vside
from loraspot.sim.mp._vssd1306 import SSD1306Model

STABLE_PORTS_FROM = 20000


class BoardParts:
    def __init__(self, profile: dict, wifi: dict | None, status: Callable[[dict], None]):
        self.profile = profile
        self._status = status
        self.http_port = free_port()
        self.button_port = free_port(socket.SOCK_DGRAM)
        self.display_on = False  # the config switches the display on (read at each boot)
        self.screen: bytes | None = None  # what the display shows (rows of pixels, MSB left)
        self.panel: SSD1306Model | None = None
        self.screens = 0
        self.air: AccessPoint | None = AccessPoint(self.http_port) if wifi is not None else None
        self.device_id = ""

    def boot_env(self) -> dict:
        """What vboot is told of the parts at a boot: ports, and the display's I2C address when the
        config switches it on (a new panel each boot)."""
        oled = self.profile.get("oled")
        self.panel = None
        if oled and self.display_on:
            self.panel = SSD1306Model(oled["addr"], oled.get("width", 128), oled.get("height", 64))
        return {"http_port": self.http_port, "button_port": self.button_port,
                "panel": oled["addr"] if self.panel is not None and oled else None,
                "button": self.profile.get("button")}

    def press(self, ms: int) -> None:
        """Hold the board's button down for ms of device time (0: let it go)."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(str(int(ms)).encode(), ("127.0.0.1", self.button_port))

    def side_message(self, kind: bytes, arg: str) -> bool:
        """Act on a side-channel message of the parts (True), or leave it to the board (False)."""
        if kind == _vside.AP:  # the access point on ({ssid, passphrase}) or off
            ap = json.loads(arg) if arg else {}
            if self.air is not None:
                self.air.switch(ap.get("ssid"), ap.get("passphrase"))
            self._status({"event": "access_point", "ssid": ap.get("ssid")})  # the passphrase stays here
        elif kind == _vside.DISPLAY:  # an I2C write to the display
            if self.panel is None:
                return True
            with contextlib.suppress(OSError):  # not a control byte: the panel does not acknowledge
                self.panel.write(bytes.fromhex(arg))
            rows = bytes(self.panel.screen())
            if rows != self.screen:
                self.screen = rows
                self.screens += 1
                _save_screen(self.device_id, self.profile["oled"], rows)
                self._status({"event": "display", "frames": self.screens})
        else:
            return False
        return True

    def power_off(self) -> None:
        if self.air is not None:
            self.air.switch(None)  # the radio is off with the chip

    def close(self) -> None:
        if self.air is not None:
            self.air.close()
        if self.screens:
            screen_file(self.device_id).unlink(missing_ok=True)


def _ephemeral_low() -> int:
    """Where the system starts handing out ports of its own (to outgoing connections and to binds
    on port 0): Linux says it in /proc; elsewhere the IANA range (49152-65535) is the rule."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 49152


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A free port on loopback for a service that is bound again at each restart (a board's web
    server and button, a broker brought back): taken below the system's ephemeral range, so that
    no outgoing connection or port-0 bind of another program can take it while its owner restarts
    (a port from bind(("", 0)) can be gone by then on a busy machine)."""
    top = min(_ephemeral_low(), 32768)
    if top - STABLE_PORTS_FROM < 1000:  # a system that hands out nearly every port: as it gives one
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    for _ in range(500):
        port = random.randrange(STABLE_PORTS_FROM, top)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port between {STABLE_PORTS_FROM} and {top} on 127.0.0.1")


def screen_file(device_id: str) -> Path:
    """Where a running virtual board keeps what its display shows (loraspot sim screenshot)."""
    return localports.runtime_dir() / f"{device_id}.screen"  # not .json: that is a port's entry


def _save_screen(device_id: str, oled: dict, rows: bytes) -> None:
    path = screen_file(device_id)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps({"width": oled.get("width", 128), "height": oled.get("height", 64), "rows": rows.hex()}))
    tmp.replace(path)
