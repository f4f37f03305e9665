# The virtual board's button (loraspot sim press): datagrams from its supervisor. C on a board (a
# pin and its interrupt): vboot loads this, before the firmware's heap is measured out, only on a
# board whose firmware runs its button (its names would otherwise shift where MicroPython's table
# of names grows for every other board). The button's pin reads as the button: machine.Pin of that
# pin number gives its level, as a board's GPIO does.
import _vboard

PORT = 0  # the loopback UDP port the supervisor sends the button's presses to (set by install)
BUTTON = None  # the board's one button (VirtualButton), made by install


def install(machine, port, pin, active_low):
    """Make the button, and let machine.Pin(pin).value() read its level (low while pressed on a
    board whose button pulls its pin low)."""
    global PORT, BUTTON
    PORT = port
    BUTTON = b = VirtualButton()
    read = machine.Pin.value

    def value(self, v=None):
        if v is None and self.id == pin:
            return (1 - b.pressed()) if active_low else b.pressed()
        return read(self, v)

    machine.Pin.value = value


class VirtualButton:
    """The button's pin, pressed by the supervisor: a datagram with a number of device ms holds it
    down that long from its arrival (0 lets it go), so a press is as long on a busy machine as on an
    idle one; the firmware waits on it as on a pin interrupt (spot.button.Button)."""

    def __init__(self):
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
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
