# The hotspot's network and watchdog. On a board: Wi-Fi (network.WLAN) kept up with back-off on
# reconnects and a "network" event on each change, the clock set by NTP (ntptime) once connected
# and every hour; until then the rxpk and stat time fields are left out. On the virtual board the
# host's network and (NTP-synced) clock are used. A watchdog (machine.WDT) fed by this task resets
# a board whose main loop is stuck; the reset cause is in the boot event.
from micropython import const

from spot.clock import ticks_add, ticks_diff

WDT_TIMEOUT_MS = const(30000)
NTP_EVERY_MS = const(3600000)
CONNECT_TIMEOUT_MS = const(20000)
MAX_BACKOFF_MS = const(300000)


async def up(app, hs):
    if app.board.virtual:
        ok = hs.utc.sync()
        app.console.event("network", {"state": "up", "kind": "host", "utc": ok})


def _ntp(hs):
    try:
        import ntptime  # pyright: ignore[reportMissingImports]

        ntptime.settime()
    except (ImportError, OSError, OverflowError, IndexError):
        return False
    return hs.utc.sync()


class Wifi:
    """Connection state machine stepped once a second (never blocks the loop)."""

    def __init__(self, app, hs, wlan, ssid, password):
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
                ev("network", {"state": "up", "kind": "wifi", "ssid": self.ssid, "ip": ip, "attempts": self.attempts})
                self.attempts = 0
                self.last_ntp = None
            if self.last_ntp is None or ticks_diff(now, self.last_ntp) >= NTP_EVERY_MS:
                self.last_ntp = now
                if not _ntp(self.hs):
                    ev("log", {"level": "warn", "msg": "NTP failed: rxpk/stat times left out until it works"})
            return
        if self.state == "up":
            self.state = "down"
            self.next_try = None
            ev("network", {"state": "down", "kind": "wifi", "ssid": self.ssid})
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
            ev("network", {"state": "error", "kind": "wifi", "msg": str(e)})


def wifi(app, hs):
    ssid = app.config.get("wifi_ssid")
    if app.board.virtual or not ssid:
        return None
    import network  # pyright: ignore[reportMissingImports]

    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    pw = app.secrets.get("wifi_password")
    return Wifi(app, hs, wlan, ssid, pw.decode() if pw else "")


async def watch(app, hs, wdt_ms=WDT_TIMEOUT_MS):
    clock = app.clock
    link = wifi(app, hs)
    if link is None and not app.board.virtual:
        app.console.event("log", {"level": "error", "msg": "no wifi_ssid in config: the hotspot has no backhaul"})
    dog = app.board.watchdog(wdt_ms)
    while True:
        dog.feed()
        if link is not None:
            link.step(clock.ticks_ms())
        await clock.sleep_ms(1000)
