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


