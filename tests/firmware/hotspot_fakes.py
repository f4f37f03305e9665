# The fakes the hotspot's firmware tests share: a clock source, a received packet, a radio and a
# console, and a Hotspot made of them. A module of its own, so a test file that needs them does not
# load test_hotspot's tests into its 112 KB heap as well.
from spot.clock import MASK, Clock
from spot.hotspot import semtech
from spot.hotspot.core import Hotspot
from spot.radio.base import Packet


class Src:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t & MASK


def _packet(data, rssi=-80, snr_x4=22):
    p = Packet()
    p.buf[: len(data)] = data
    p.length = len(data)
    p.rssi, p.snr_x4, p.freq, p.sf, p.bw, p.cr = rssi, snr_x4, 868100000, 7, 125000, 5
    return p


class FakeRadio:
    BW = {125000: 7, 250000: 8, 500000: 9}
    MIN_SF = 7
    MIN_POWER = -4
    CHIP = 0
    max_power = 20
    band = (862000000, 1020000000)


class FakeConsole:
    def __init__(self):
        self.events = []

    def event(self, kind, data):
        self.events.append((kind, data))

    reserve = None

    def _release(self):  # as spot.console: its reserve given back to the heap for the work at hand
        if self.reserve is None:
            return False
        self.reserve = None
        import gc

        gc.collect()
        return True


def _hotspot():
    src = Src()
    clock = Clock(us_source=src, ms_source=lambda: src.t // 1000)
    return src, Hotspot(FakeRadio(), clock, FakeConsole(), 868100000, 7, (863000000, 870000000), queue_size=4)


def _txpk(**kw):
    t = semtech.Txpk()
    t.freq, t.data = 868100000, b"\x60" + bytes(11)
    for k, v in kw.items():
        setattr(t, k, v)
    return t


def _server():
    """A UDP socket on loopback standing for the network server: (socket, port)."""
    import socket

    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for port in range(47710, 47800):
        try:
            server.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
            return server, port
        except OSError:
            continue
    raise OSError("no free port in 47710-47799")
