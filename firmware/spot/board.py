# The only module that imports `machine`: turns the board profile (/board.json) into the objects
# the rest of the firmware is given (clock, console port, reset, identity).
import binascii
import json

import machine

from spot.clock import Clock
from spot.stdio import StdioPort

try:
    import _vboard  # present only on the virtual board  # pyright: ignore[reportMissingImports]
except ImportError:
    _vboard = None

PROFILE_PATH = "/board.json"
_CAUSES = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deepsleep",
    machine.SOFT_RESET: "soft",
}
_CRASH_MARK = b"crash:"


def reset_now():
    """A hard reset without a Board (main.py's last resort on a production board)."""
    machine.reset()


def _validate(prof):
    """Validate the profile, then let the schema module go: it is only needed once per boot and
    its tables cost about 9 KB of heap on the unix port (half on an ESP32)."""
    from spot import profile, unload

    try:
        return profile.validate(prof)
    finally:
        unload("spot.profile")


class Board:
    def __init__(self, prof):
        self.profile = _validate(prof)
        self.id = prof["id"]
        self.virtual = _vboard is not None
        self.crash_streak = 0  # resets in a row that followed a crash

    @classmethod
    def load(cls, path=PROFILE_PATH):
        with open(path) as f:
            return cls(json.load(f))

    def device_id(self):
        """The base MAC as 12 hex digits: stable per board."""
        return binascii.hexlify(machine.unique_id()).decode()

    def clock(self):
        if _vboard is not None:
            return Clock(speed=_vboard.SPEED, start_us=_vboard.START_US, start_ms=_vboard.START_MS)
        return Clock()

    def radio(self, clock):
        """The radio driver for this board, its SPI bus and pins made from the profile."""
        from spot.radio import open_radio

        r = self.profile["radio"]
        if r["chip"] == "virtual":
            return open_radio(self, clock)
        pins = r["pins"]
        pin = machine.Pin
        spi = machine.SPI(1, baudrate=8000000, polarity=0, phase=0, sck=pin(pins["sck"]), mosi=pin(pins["mosi"]),
                          miso=pin(pins["miso"]))
        p = {"nss": pin(pins["nss"], pin.OUT, value=1), "reset": pin(pins["reset"], pin.OUT, value=1)}
        for name in ("dio0", "dio1", "busy"):
            if pins.get(name) is not None:
                p[name] = pin(pins[name], pin.IN)
        for name, num in (r.get("rf_switch") or {}).items():
            if num is not None:
                p[name] = pin(num, pin.OUT, value=0)
        return open_radio(self, clock, spi, p)

    # ---- peripherals of the node role ------------------------------------------------------------
    def power_on(self):
        """Switch on the rails the radio, GPS and sensors hang on (T-Beam power chip, Heltec Vext)."""
        pw = self.profile.get("power") or {}
        if pw.get("vext"):
            from spot.power import vext_level

            v = pw["vext"]
            machine.Pin(v["pin"], machine.Pin.OUT, value=vext_level(v.get("active_low", False), True))
        if pw.get("pmu"):
            from spot.power import Pmu

            p = pw["pmu"]
            bus = machine.SoftI2C(scl=machine.Pin(p["i2c"]["scl"]), sda=machine.Pin(p["i2c"]["sda"]))
            Pmu(bus, p["addr"], p["chip"]).rails(radio=True, gps=bool(self.profile.get("gps")))

    def i2c(self):
        p = self.profile.get("i2c")
        if not p:
            raise ValueError("this board profile has no I2C pins")
        return machine.SoftI2C(scl=machine.Pin(p["scl"]), sda=machine.Pin(p["sda"]), freq=100000)

    def reserved_i2c(self):
        """I2C addresses of the board's own parts (power chip, display): not sensors."""
        out = []
        pmu = (self.profile.get("power") or {}).get("pmu")
        if pmu:
            out.append(pmu["addr"])
        if self.profile.get("oled"):
            out.append(self.profile["oled"]["addr"])
        return out

    def onewire(self, pin):
        if pin is None:
            raise ValueError("ds18b20 needs its data pin: ds18b20@PIN")
        import onewire

        return onewire.OneWire(machine.Pin(pin))

    def gps_uart(self):
        g = self.profile.get("gps")
        if not g:
            raise ValueError("this board profile has no GPS")
        return machine.UART(g["uart"], baudrate=g["baud"], tx=g["tx"], rx=g["rx"], rxbuf=512)

    def battery_adc(self):
        b = self.profile.get("battery")
        if not b:
            raise ValueError("this board profile has no battery sense pin")
        if b.get("enable"):
            e = b["enable"]
            machine.Pin(e["pin"], machine.Pin.OUT, value=0 if e.get("active_low") else 1)
        return machine.ADC(machine.Pin(b["adc_pin"]), atten=machine.ADC.ATTN_11DB)

    # ---- sleep ---------------------------------------------------------------------------------------
    def rtc_data(self):
        """What RTC memory holds (survives deep sleep and soft resets, not power cuts)."""
        return bytes(machine.RTC().memory())

    def save_rtc(self, data):
        machine.RTC().memory(data)

    def watchdog(self, timeout_ms):
        """The task watchdog (machine.WDT): feed() it, or the board resets (cause "watchdog")."""
        return machine.WDT(timeout=timeout_ms)

    def deepsleep(self, ms):
        machine.deepsleep(ms)

    def network(self, ssid):
        """The interface the hotspot's backhaul runs over, shaped as network.WLAN: the ESP32's
        Wi-Fi station (None without a network to join), or on the virtual board the host's
        network (always connected) unless it has Wi-Fi networks in reach (loraspot sim --wifi).
        A board without a network to join by itself is one that can be set up (spot.setup)."""
        if _vboard is not None:
            return _vboard.network(ssid)
        if not ssid:
            return None
        import network  # pyright: ignore[reportMissingImports]

        wlan = network.WLAN(network.STA_IF)
        wlan.active(True)
        return wlan

    def secrets(self):
        """The secrets store: a file on the virtual board, the ESP32's NVS on a real one."""
        if self.virtual:
            from spot.secretstore import Secrets

            return Secrets()
        from spot.nvs import NvsSecrets

        return NvsSecrets()

    def security(self):
        """The chip's security eFuses packed in a small int (spot.efuse.read, loaded for the call)."""
        from spot import unload
        from spot.efuse import read

        unload("spot.efuse")
        return read(machine.mem32, self.profile["chip"])

    def console_port(self):
        return StdioPort()

    def reset_cause(self):
        """power_on, hard, watchdog, deepsleep, soft, or crash (a reset the firmware made after an
        unhandled exception, told apart through RTC memory, which survives soft resets)."""
        rtc = machine.RTC()
        mark = bytes(rtc.memory())
        if mark.startswith(_CRASH_MARK):
            rtc.memory(b"")
            try:
                self.crash_streak = int(mark[len(_CRASH_MARK) :])
            except ValueError:
                self.crash_streak = 1
            return "crash"
        return _CAUSES.get(machine.reset_cause(), "unknown")

    def reset(self, after_crash=False):
        if after_crash:
            machine.RTC().memory(_CRASH_MARK + str(self.crash_streak + 1).encode())
        machine.reset()
