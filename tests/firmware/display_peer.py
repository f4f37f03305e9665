# The display driver (spot.display) drawing known states into the SSD1306 command model
# (sim/mp/_vssd1306.py, which decodes the command stream into its own RAM), in MicroPython, for
# tests/host/test_display.py: display_peer.py -> one JSON line per state with what the panel shows.
import json
from binascii import hexlify

from _vhw import I2CBus
from _vssd1306 import SSD1306Model
from spot.display import Display, Ssd1306


class Cfg:
    def __init__(self, values):
        self.values = values

    def get(self, key):
        return self.values[key]


class Clock:
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def uptime_ms(self):
        return self.ms


class Board:
    profile = {}

    def device_id(self):
        return "024c53a1b2c3"


class Secrets:
    def get(self, name):
        return b"ABCD-EFGH-JKLM" if name == "pairing_code" else None


class Backlog:
    dropped = {"full": 1, "age": 2}


class Hotspot:
    backhaul = "up"
    stats = {"rx": 1234, "forwarded": 1230}
    backlog = Backlog()
    last_rssi = -87
    last_snr_x4 = 30
    freq = 868100000
    sf = 7


class Net:
    state = "up"


class Lw:
    """A joined node's LoRaWAN stack: its counters and its last downlink's signal."""

    session = object()
    stats = {"joins": 1, "join_fail": 0, "uplinks": 42, "downlinks": 3, "down_rejected": 0}
    last_rssi = -97
    last_snr = 6


class Node:
    lw = Lw()


class App:
    def __init__(self, role):
        self.config = Cfg({"role": role, "name": "roof"})
        self.clock = Clock()
        self.board = Board()
        self.secrets = Secrets()
        self.setup = None
        self.hotspot = Hotspot() if role == "hotspot" else None
        self.network = Net()
        self.node = Node() if role == "node" else None


model = SSD1306Model()
bus = I2CBus(model)
panel = Ssd1306(bus, 0x3C, 128, 64)
init = {"on": model.on, "pump": model.pump, "mode": model.mode, "contrast": model.contrast, "remap": model.remap,
        "com_rev": model.com_rev, "mux": model.mux, "invert": model.invert}
print(json.dumps({"state": "init", "model": init}))


def shot(name, app, presses=0, bat=None):
    d = Display(app, panel)
    d.bat = bat
    for _ in range(presses):
        d.press()
    d.draw()
    print(json.dumps({"state": name, "rows": hexlify(model.screen()).decode(), "writes": model.writes}))


shot("hotspot", App("hotspot"), bat=3950)
shot("hotspot-board", App("hotspot"), presses=1)
setup_app = App("hotspot")
setup_app.setup = object()
shot("setup", setup_app)
shot("node", App("node"), bat=3710)
shot("setup-code", setup_app, presses=1)
panel.power(False)
print(json.dumps({"state": "off", "rows": hexlify(model.screen()).decode()}))
