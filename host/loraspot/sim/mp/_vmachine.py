# Stands in for the ESP32 `machine` module on the virtual board. Resets, deep sleep and RTC
# memory are carried out by the host process that runs this interpreter (messages on fd SIDE).
import binascii
import os

import _vside

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_state = {"cause": PWRON_RESET, "mac": b"\x02LS\x00\x00\x01", "rtc": b"", "freq": 160000000}


def setup(side, cause, mac, rtc, efuse=None):
    _vside.open_channel(side)
    _state["cause"] = cause
    _state["mac"] = mac
    _state["rtc"] = rtc
    for addr, value in efuse or ():
        mem32.words[addr] = value


class _Mem32:
    """machine.mem32 for the registers a board's firmware reads: the eFuse words the host gave
    (the security eFuses); any other address reads 0 and writes are ignored."""

    def __init__(self):
        self.words = {}

    def __getitem__(self, addr):
        return self.words.get(addr, 0)

    def __setitem__(self, addr, value):
        pass


mem32 = _Mem32()


def halt():
    """Stop this interpreter at once, as a board stops when power goes or the chip resets."""
    os.system("kill -9 $PPID")
    while True:
        pass


def reset():
    # esp_restart(): the ROM reports SW_CPU_RESET, MicroPython HARD_RESET afterwards.
    _vside.tell(_vside.RESET, _vside.SOFT)
    halt()


def soft_reset():
    # Restarts the interpreter only; the chip's reset cause stays what it was.
    _vside.tell(_vside.RESET, _vside.VM)
    halt()


def reset_cause():
    return _state["cause"]


def unique_id():
    return _state["mac"]


def freq(hz=None):
    if hz is None:
        return _state["freq"]
    _state["freq"] = hz


def deepsleep(ms=0):
    _vside.tell(_vside.DEEPSLEEP, ms)
    halt()


def lightsleep(ms=0):
    import time

    time.sleep_ms(ms)


def idle():
    pass


class WDT:
    """The task watchdog: the host resets the board (cause WDT_RESET) when feed() is not called
    within timeout ms of device time."""

    def __init__(self, id=0, timeout=5000):
        if not 1 <= timeout:
            raise ValueError("watchdog timeout must be positive")
        _vside.tell(_vside.WDT, timeout)

    def feed(self):
        _vside.tell(_vside.WDT)


class RTC:
    def memory(self, data=None):
        if data is None:
            return _state["rtc"]
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        data = data if isinstance(data, bytes) else bytes(data)
        _state["rtc"] = data
        side = _vside.begin(_vside.RTC)
        if side is not None:  # in small pieces: this is C on a board, it must not need heap
            for i in range(0, len(data), 48):
                side.write(binascii.hexlify(data[i : i + 48]))
            _vside.end()


# ---- peripherals: the virtual board's sensors (set up by _vdevices) ---------------------------------
def _devices():
    try:
        import _vdevices

        return _vdevices.STATE
    except ImportError:
        import sys

        w = sys.modules.get("_vwifi")  # loaded by vboot only on a board with a display or Wi-Fi
        return {"i2c": w.PANEL_BUS if w is not None else None, "uart": {}, "adc": {}}


class Pin:
    IN = 1
    OUT = 3
    PULL_UP = 1
    PULL_DOWN = 2

    def __init__(self, pin, mode=-1, pull=-1, value=None):
        self.id = pin
        # an input nothing drives reads as its pull makes it (a button not pressed: high)
        self._v = (1 if pull == 1 else 0) if value is None else value

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0


class _NoDevices:
    def scan(self):
        return []

    def __getattr__(self, name):
        def nack(*args):
            raise OSError(19)  # ENODEV: nothing acknowledges

        return nack


class SoftI2C:
    """The board's I2C bus: the virtual sensors on it, or nothing (every address unanswered)."""

    def __init__(self, scl=None, sda=None, freq=400000, timeout=50000):
        self._bus = _devices()["i2c"] or _NoDevices()

    def __getattr__(self, name):
        return getattr(self._bus, name)


I2C = SoftI2C


class UART:
    def __init__(self, id, baudrate=115200, tx=None, rx=None, rxbuf=256, **kw):
        self._dev = _devices()["uart"].get(id)

    def any(self):
        return self._dev.any() if self._dev else 0

    def readinto(self, buf, n=None):
        return self._dev.readinto(buf) if self._dev else None

    def read(self, n=-1):
        return self._dev.read(n) if self._dev else None

    def write(self, data):
        return len(data)


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3

    def __init__(self, pin, atten=ATTN_0DB):
        self._dev = _devices()["adc"].get(pin.id if isinstance(pin, Pin) else pin)

    def read_uv(self):
        return self._dev.read_uv() if self._dev else 0

    def read_u16(self):
        return self.read_uv() * 65535 // 3300000
