# The hotspot's network and watchdog. The interface comes from the board (Board.network: Wi-Fi on
# an ESP32, the host's network on the virtual board), kept up with back-off on reconnects and a
# "network" event on each change; the clock is set by NTP (ntptime, or the interface's own
# settime) once connected and every hour; until then the rxpk and stat time fields are left out.
# A watchdog (machine.WDT) fed by this task resets a board whose main loop is stuck; the reset
# cause is in the boot event.
from micropython import const

from spot.clock import ticks_add, ticks_diff

WDT_TIMEOUT_MS = const(30000)
NTP_EVERY_MS = const(3600000)
CONNECT_TIMEOUT_MS = const(20000)
MAX_BACKOFF_MS = const(300000)


def _ntp(hs, wlan):
    try:
        settime = getattr(wlan, "settime", None)
        if settime is None:
            import ntptime  # pyright: ignore[reportMissingImports]

            settime = ntptime.settime
        settime()
    except (ImportError, OSError, OverflowError, IndexError):
        return False
    return hs.utc.sync()


class Wifi:
    """Connection state machine stepped once a second (never blocks the loop)."""

    def __init__(self, app, hs, wlan, ssid, password):  # wlan: Board.network()
        self.app = app
        self.hs = hs
        self.wlan = wlan
        self.ssid = ssid
        self.password = password
        self.state = "down"
        self.backoff = 1000
        self.next_try = None  # ticks_ms of the next connection attempt (None: now)
        self.tried_at = 0
        self.last_ntp = None
        self.attempts = 0
        self.kind = getattr(wlan, "KIND", "wifi")

    def step(self, now):
        w = self.wlan
        ev = self.app.console.event
        if w.isconnected():
            if self.state != "up":
                self.state = "up"
                self.backoff = 1000
                try:
                    ip = w.ifconfig()[0]
                except (OSError, IndexError):
                    ip = None
                ev("network", {"state": "up", "kind": self.kind, "ssid": self.ssid, "ip": ip,
                               "attempts": self.attempts})
                self.attempts = 0
                self.last_ntp = None
            if self.last_ntp is None or ticks_diff(now, self.last_ntp) >= NTP_EVERY_MS:
                self.last_ntp = now
                if not _ntp(self.hs, w):
                    ev("log", {"level": "warn", "msg": "NTP failed: rxpk/stat times left out until it works"})
            return
        if self.state == "up":
            self.state = "down"
            self.next_try = None
            ev("network", {"state": "down", "kind": self.kind, "ssid": self.ssid})
        if self.state == "connecting" and ticks_diff(now, self.tried_at) < CONNECT_TIMEOUT_MS:
            return
        if self.next_try is not None and ticks_diff(now, self.next_try) < 0:
            return
        self.attempts += 1
        self.state = "connecting"
        self.tried_at = now
        self.next_try = ticks_add(now, self.backoff)
        self.backoff = min(MAX_BACKOFF_MS, self.backoff * 2)
        try:
            w.disconnect()
        except OSError:
            pass
        try:
            w.connect(self.ssid, self.password)
        except OSError as e:
            ev("network", {"state": "error", "kind": self.kind, "msg": str(e)})


def link(app, hs):
    """The network link of the board (stepped at once: a link that is up says so before the
    backhaul starts), or None when it needs a Wi-Fi network and none is configured."""
    ssid = app.config.get("wifi_ssid")
    wlan = app.board.network(ssid)
    if wlan is None:
        app.console.event("log", {"level": "error", "msg": "no wifi_ssid in config: the hotspot has no backhaul"})
        return None
    pw = app.secrets.get("wifi_password")
    w = Wifi(app, hs, wlan, ssid, pw.decode() if pw else "")
    w.step(app.clock.ticks_ms())
    return w


async def watch(app, hs, link, backhaul, wdt_ms=WDT_TIMEOUT_MS):
    """The hotspot's clock loop, about once a second: feeds the watchdog, steps the network link,
    keeps the packet counter's epoch and steps the backhaul's timers (keepalives, stats and
    acknowledgement deadlines)."""
    clock = app.clock
    dog = app.board.watchdog(wdt_ms)
    while True:
        dog.feed()
        now = clock.ticks_ms()
        if link is not None:
            link.step(now)
        hs.tmst.advance()
        backhaul.step(now)
        await clock.sleep_ms(1000)
