# Wi-Fi backhaul of a board: connection attempts with back-off that never block the loop, a
# network event on every change, reconnecting at once after a drop.
from fwtest import eq
from spot.hotspot import net


class _Hs:
    pass


class FakeConsole:
    def __init__(self):
        self.events = []

    def event(self, kind, data):
        self.events.append((kind, data))


class FakeWlan:
    def __init__(self):
        self.up = False
        self.connects = 0

    def isconnected(self):
        return self.up

    def connect(self, ssid, pw):
        self.connects += 1

    def disconnect(self):
        pass

    def ifconfig(self):
        return ("192.168.1.7", "255.255.255.0", "192.168.1.1", "1.1.1.1")


class FakeApp:
    def __init__(self):
        self.console = FakeConsole()


def test_wifi_reconnects_with_back_off_and_reports():
    hs = _Hs()
    app = FakeApp()
    w = FakeWlan()
    wifi = net.Wifi(app, hs, w, "field", "pw")
    t = 0
    wifi.step(t)
    eq(w.connects, 1)
    for t in range(1000, net.CONNECT_TIMEOUT_MS, 1000):
        wifi.step(t)
    eq(w.connects, 1)  # waits for the attempt to time out
    times = []
    for t in range(net.CONNECT_TIMEOUT_MS, 200000, 1000):
        n = w.connects
        wifi.step(t)
        if w.connects > n:
            times.append(t)
    gaps = [b - a for a, b in zip(times, times[1:])]
    eq(all(g >= net.CONNECT_TIMEOUT_MS for g in gaps), True)
    w.up = True
    wifi.step(300000)
    ev = [d for k, d in app.console.events if k == "network"]
    eq((ev[-1]["state"], ev[-1]["ip"]), ("up", "192.168.1.7"))
    eq(wifi.backoff, 1000)
    w.up = False
    wifi.step(301000)
    eq([d for k, d in app.console.events if k == "network"][-1]["state"], "down")
    eq(w.connects, len(times) + 2)  # reconnects at once after a drop


class _Sock:
    """recv fails for heap as the script says: 'taken' after the datagram went (the unix port
    copies it into a second block, the ESP32 makes its bytes object), 'kept' before."""

    def __init__(self, script, queued):
        self.script = list(script)
        self.queued = list(queued)

    def recv(self, n):
        step = self.script.pop(0) if self.script else None
        if step == "kept":
            raise MemoryError
        if not self.queued:
            raise OSError(11)  # EAGAIN
        d = self.queued.pop(0)
        if step == "taken":
            raise MemoryError
        return d

    def readinto(self, buf):
        raise OSError(11)


class _Counted:
    def __init__(self):
        self.nomem = 0

    def out_of_memory(self):
        self.nomem += 1


class _Console:
    def _release(self):
        return True


def _udp(sock):
    from spot.hotspot import udp

    u = object.__new__(udp.SemtechUdp)
    u.sock, u.reserve, u.small, u.hs, u.console = sock, bytearray(8), bytearray(64), _Counted(), _Console()
    return u


def test_a_datagram_recv_took_before_it_failed_for_heap_is_counted_lost():
    u = _udp(_Sock(["taken"], [b"d1"]))
    eq((u._recv(), u.hs.nomem), (None, 1))
    # taken with the next one queued behind it: the next try reads that one, and the failure that
    # cost the first is counted all the same
    u = _udp(_Sock(["taken"], [b"d1", b"d2"]))
    eq((u._recv(), u.hs.nomem), (b"d2", 1))
    u = _udp(_Sock(["kept"], [b"d1"]))  # the datagram was still there: read on the next try, the failure counted
    eq((u._recv(), u.hs.nomem), (b"d1", 1))
    u = _udp(_Sock(["kept", "kept", "kept"], [b"d1"]))  # no block at all: dropped, each failure counted
    eq((u._recv(), u.hs.nomem), (None, 3))
    u = _udp(_Sock([], []))  # nothing to read is nothing lost
    eq((u._recv(), u.hs.nomem), (None, 0))
