# Stands in for the ESP32 `machine` module on the virtual board. Resets, deep sleep and RTC
# memory are carried out by the host process that runs this interpreter (messages on fd SIDE).
import binascii
import os

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5

_state = {"side": None, "cause": PWRON_RESET, "mac": b"\x02LS\x00\x00\x01", "rtc": b"", "freq": 160000000}


def setup(side, cause, mac, rtc):
    _state["side"] = side
    _state["cause"] = cause
    _state["mac"] = mac
    _state["rtc"] = rtc


def tell(msg):
    side = _state["side"]
    if side is not None:
        side.write(msg + b"\n")


def halt():
    """Stop this interpreter at once, as a board stops when power goes or the chip resets."""
    os.system("kill -9 $PPID")
    while True:
        pass


def reset():
    # esp_restart(): the chip reports a software reset (SOFT_RESET) afterwards.
    tell(b"reset soft")
    halt()


def soft_reset():
    # Restarts the interpreter only; the chip's reset cause stays what it was.
    tell(b"reset vm")
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
    tell(b"deepsleep %d" % ms)
    halt()


def lightsleep(ms=0):
    import time

    time.sleep_ms(ms)


def idle():
    pass


class RTC:
    def memory(self, data=None):
        if data is None:
            return _state["rtc"]
        if len(data) > 2048:
            raise ValueError("RTC memory holds 2048 bytes")
        _state["rtc"] = bytes(data)
        tell(b"rtc " + binascii.hexlify(bytes(data)))
