# The virtual board's own parts: its Wi-Fi station and access point (network.WLAN stand-ins), its
# button, and the link to its display (the panel's model runs in the supervisor). C on a board:
# vboot loads this before the firmware's heap is measured out.
import _vboard
import _vside

PANEL_BUS = None  # the I2C bus with only the display on it, when the board has no sensor models
BUTTON_PORT = 0  # the loopback UDP port the supervisor sends the button's presses to
BUTTON = None  # the board's button (VirtualButton), on a board whose profile has one


def start(cfg, i2c):
    """Wire the parts vboot was told of: the button's port, the display on the sensors' I2C bus
    (i2c, the bus of the sensor models) or on a bus of its own."""
    global BUTTON_PORT, PANEL_BUS, BUTTON
    BUTTON_PORT = cfg.get("button_port", 0)
    b = cfg.get("button")
    if b:
        import _vmachine

        BUTTON = VirtualButton()
        _vmachine.Pin = _button_pin(_vmachine.Pin, b["pin"], b.get("active_low", True))
    if cfg.get("panel"):
        link = PanelLink(cfg["panel"])
        if i2c is not None:
            i2c.devices[link.addr] = link
        else:
            PANEL_BUS = PanelBus(link)


# ---- Wi-Fi with networks in reach (loraspot sim --wifi SSID=PASSPHRASE) ----------------------------
# Without --wifi the board is on the host's network (HostNetwork above). With it, the station
# joins only a network in reach with its right passphrase, and the access point is told to the
# board's supervisor (the Wi-Fi radio of this board), which lets a station in only with the
# passphrase's WPA2 key (loraspot.sim.air).

# network.WLAN.status() values of the esp32 port (ports/esp32/network_wlan.c)
STAT_IDLE = 1000
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_NO_AP_FOUND = 201
STAT_WRONG_PASSWORD = 202
AUTH_WPA2_PSK = 3


class VirtualWlan:
    """network.WLAN(network.STA_IF) among the networks in reach."""

    KIND = "wifi"

    def __init__(self):
        self._status = STAT_IDLE
        self._on = False

    def active(self, on=None):
        if on is None:
            return self._on
        self._on = bool(on)
        if not on:
            self._status = STAT_IDLE

    def connect(self, ssid=None, key=None):
        if not self._on:
            raise OSError("STA must be active")
        want = (_vboard.WIFI or {}).get(ssid)
        if want is None:
            self._status = STAT_NO_AP_FOUND
        elif want != key:
            self._status = STAT_WRONG_PASSWORD
        else:
            self._status = STAT_GOT_IP

    def disconnect(self):
        self._status = STAT_IDLE

    def status(self):
        return self._status

    def isconnected(self):
        return self._status == STAT_GOT_IP

    def ifconfig(self):
        return ("127.0.0.1", "255.0.0.0", "127.0.0.1", "127.0.0.1")

    def settime(self):
        """The host's clock is NTP-synced already: nothing to set."""


class VirtualAp:
    """network.WLAN(network.AP_IF): what it is configured with goes to the supervisor while it is
    on (the passphrase too: the Wi-Fi radio holds it on a board); an open access point is refused."""

    def __init__(self):
        self._cfg = {}
        self._on = False

    def config(self, **kw):
        if not self._on:
            raise OSError("AP must be active")  # as the esp32 port says before esp_wifi_start
        if "key" in kw:
            kw["password"] = kw.pop("key")
        self._cfg.update(kw)
        self._tell()

    def active(self, on=None):
        if on is None:
            return self._on
        self._on = bool(on)
        self._tell()

    def _tell(self):
        import json

        c = self._cfg
        if self._on and c.get("essid"):
            if c.get("authmode") != AUTH_WPA2_PSK or len(c.get("password") or "") < 8:
                raise OSError("the virtual access point offers WPA2-PSK with a passphrase only")
            _vside.tell(_vside.AP, json.dumps({"ssid": c["essid"], "passphrase": c["password"]}).encode())
        elif not self._on:
            _vside.tell(_vside.AP)

    def ifconfig(self):
        return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "192.168.4.1")


# ---- the board's button (loraspot sim press): datagrams from the supervisor ----------------------


class VirtualButton:
    """The button's pin, pressed by the supervisor: a datagram with a number of device ms holds it
    down that long from its arrival (0 lets it go), so a press is as long on a busy machine as on an
    idle one; the firmware waits on it as on a pin interrupt (spot.parts.Button) or reads its pin
    (machine.Pin, _button_pin)."""

    def __init__(self):
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(socket.getaddrinfo("127.0.0.1", BUTTON_PORT)[0][-1])
        self.sock.setblocking(False)
        self.until = None  # time.ticks_ms at which a held press ends

    def pressed(self):
        import time

        while True:
            try:
                d = self.sock.recv(16)
            except OSError:
                break
            try:
                ms = int(d)
            except ValueError:
                continue
            self.until = time.ticks_add(time.ticks_ms(), ms // _vboard.SPEED) if ms > 0 else None
        if self.until is not None and time.ticks_diff(self.until, time.ticks_ms()) <= 0:
            self.until = None
        return 1 if self.until is not None else 0


def _button_pin(base, pin, active_low):
    """machine.Pin with the button's pin read from the button: low while it is held on a board
    whose button pulls its pin to ground (the PRG/BOOT buttons), high otherwise."""

    class ButtonPin(base):
        def value(self, v=None):
            if v is None and self.id == pin:
                return int(BUTTON.pressed() != active_low)
            return base.value(self, v)

    return ButtonPin


class PanelLink:
    """The display on the board's I2C bus: what the firmware writes to it goes to the supervisor
    ("display HEX"), which runs the panel (loraspot.sim.mp._vssd1306) and keeps what it shows."""

    def __init__(self, addr):
        self.addr = addr

    def write(self, data):
        f = _vside.begin(_vside.DISPLAY)
        if f is None:
            return
        from binascii import hexlify

        mv = memoryview(data)
        for i in range(0, len(data), 32):
            f.write(hexlify(mv[i : i + 32]))
        _vside.end()

    def read(self, n):
        return bytes(n)  # the status byte: nothing the driver reads


class PanelBus:
    """machine.I2C with only the display on it (no device elsewhere: ENODEV, as on an ESP32)."""

    def __init__(self, link):
        self.link = link

    def _dev(self, addr):
        if addr != self.link.addr:
            raise OSError(19)
        return self.link

    def scan(self):
        return [self.link.addr]

    def writeto(self, addr, buf):
        self._dev(addr).write(buf)

    def readfrom(self, addr, n):
        return self._dev(addr).read(n)

    def readfrom_into(self, addr, buf):
        buf[:] = self._dev(addr).read(len(buf))

    def writeto_mem(self, addr, reg, buf):
        self._dev(addr).write(bytes([reg]) + bytes(buf))

    def readfrom_mem(self, addr, reg, n):
        return self._dev(addr).read(n)
