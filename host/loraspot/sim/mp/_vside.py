# The side channel from the virtual board's interpreter to the process that runs it
# (loraspot.sim.vboard): one line per message, "KIND" or "KIND ARG". This module is its one
# definition: the board side (vboot, _vmachine, _vdevices, under MicroPython) writes with tell(),
# the supervisor (CPython) reads with parse(). Writing needs no heap (this is C on a board).

SCRIPTS = b"scripts"  # boot.py is about to run: from here on a Ctrl-C on the line may interrupt
RTC = b"rtc"  # ARG: the RTC memory in hex (kept across resets, lost with the power)
SENSOR = b"sensor"  # ARG: JSON of what a virtual sensor measured
WDT = b"wdt"  # the watchdog started (ARG: its timeout in device ms) or was fed (no ARG)
AP = b"ap"  # ARG: JSON {ssid, passphrase} of the access point switched on; no ARG: off
DISPLAY = b"display"  # ARG: hex of one I2C write to the display (the supervisor runs the panel: _vssd1306)
HEAPSHORT = b"heapshort"  # ARG: bytes by which the boot code outgrew its heap allowance
# The last message before the interpreter stops says why it stopped:
POWERCUT = b"powercut"  # ARG: flash operations done before the power went
RESET = b"reset"  # ARG: SOFT (machine.reset: the chip restarts) or VM (the interpreter only)
SOFTREBOOT = b"softreboot"  # ARG: the REPL kind to come back to after Ctrl-D ("raw", "friendly")
DEEPSLEEP = b"deepsleep"  # ARG: the sleep in device ms
NOFS = b"nofs"  # no filesystem could be mounted: the board waits to be flashed again
SOFT = b"soft"
VM = b"vm"

_out = [None]


def open_channel(f):
    """The board side: the file the messages go to."""
    _out[0] = f


def tell(kind, arg=None):
    """One message; arg: bytes, or an int written in decimal."""
    f = _out[0]
    if f is None:
        return
    f.write(kind)
    if arg is not None:
        f.write(b" ")
        f.write(arg if isinstance(arg, bytes) else b"%d" % arg)
    f.write(b"\n")


def begin(kind):
    """A message whose argument is written in pieces (f.write, then end()); None without a channel."""
    f = _out[0]
    if f is not None:
        f.write(kind)
        f.write(b" ")
    return f


def end():
    f = _out[0]
    if f is not None:
        f.write(b"\n")


def parse(raw):
    """The supervisor side: (KIND, ARG) of one line read from the channel, ARG as text ("" when none)."""
    kind, _, arg = raw.strip().partition(b" ")
    return kind, arg.decode("utf-8", "replace")
