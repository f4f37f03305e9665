# The board's display (profile "oled": an SSD1306 on I2C; config display): role, network state, the
# last packet's RSSI and SNR, counters and battery, in pages a short press of the button turns.
# The driver writes the SSD1306's command set (Solomon Systech datasheet rev 1.1, section 9 and the
# application note's initialisation) and the whole picture in horizontal addressing mode, a page
# of 8 rows per 128 bytes, which is framebuf's MONO_VLSB layout: one buffer, allocated once.
import framebuf
from micropython import const

from spot.clock import ticks_diff

REFRESH_MS = const(1000)
CODE_SHOWN_MS = const(60000)  # the pairing code stays on the set-up page this long after a press
LINES = const(8)


class Ssd1306:
    def __init__(self, i2c, addr=0x3C, width=128, height=64, contrast=0xCF):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.buf = bytearray(1 + width * height // 8)
        self.buf[0] = 0x40  # control byte: what follows is display data
        self.fb = framebuf.FrameBuffer(memoryview(self.buf)[1:], width, height, framebuf.MONO_VLSB)
        self.command(
            0xAE,  # display off while it is set up
            0xD5, 0x80,  # clock divide ratio and oscillator frequency (reset value)
            0xA8, height - 1,  # multiplex ratio: the panel's rows
            0xD3, 0x00,  # no display offset
            0x40,  # start line 0
            0x8D, 0x14,  # charge pump on (the module has no other supply for the panel)
            0x20, 0x00,  # horizontal addressing
            0xA1,  # segment remap: column 127 on SEG0 (the module's upright picture)
            0xC8,  # COM scan from COM[N-1]
            0xDA, 0x12 if height == 64 else 0x02,  # COM pins: alternative for 64 rows, sequential for 32
            0x81, contrast,
            0xD9, 0xF1,  # pre-charge period, for the charge pump
            0xDB, 0x40,  # VCOMH deselect level
            0xA4,  # the picture from RAM
            0xA6,  # not inverted
            0xAF,  # display on
        )

    def command(self, *codes):
        self.i2c.writeto(self.addr, bytes((0x00,) + codes))  # control byte 0x00: a run of commands

    def show(self):
        self.command(0x21, 0, self.width - 1, 0x22, 0, self.height // 8 - 1)
        self.i2c.writeto(self.addr, self.buf)

    def power(self, on):
        self.command(0xAF if on else 0xAE)


def battery_mv(board):
    from spot.sensors.battery import Battery

    try:
        b = board.profile.get("battery")
        return Battery(board.battery_adc(), b["divider"]).millivolts() if b else None
    except (OSError, ValueError):
        return None


def lines_hotspot(app, page):
    hs = app.hotspot
    net = getattr(app, "network", None)
    if page == 0:
        out = ["HOTSPOT", "wifi %s" % (net.state if net is not None else "none"),
               "backhaul %s" % (hs.backhaul if hs is not None else "off")]
        if hs is not None:
            st = hs.stats
            out.append("rx %d fw %d" % (st["rx"], st["forwarded"]))
            out.append("drop %d" % sum(hs.backlog.dropped.values()))
            out.append("rssi %d snr %.1f" % (hs.last_rssi, hs.last_snr_x4 / 4) if st["rx"] else "no packet yet")
            out.append("%.3f MHz SF%d" % (hs.freq / 1e6, hs.sf))
        return out
    return None


def lines_node(app, page):
    node = app.node
    if page == 0:
        lw = node.lw if node is not None else None
        out = ["NODE", "joined" if lw is not None and lw.session is not None else "not joined"]
        if lw is not None:
            st = lw.stats
            out.append("up %d down %d" % (st.get("uplinks", 0), st.get("downlinks", 0)))
            out.append("joins %d" % st.get("joins", 0))
            if st.get("downlinks"):  # the last packet the node heard: its last downlink
                out.append("rssi %d snr %d" % (lw.last_rssi, lw.last_snr))
        return out
    return None


def lines_board(app):
    from spot import VERSION

    up = app.clock.uptime_ms() // 1000
    return [app.board.device_id(), "fw " + VERSION, "up %dh%02dm" % (up // 3600, up // 60 % 60),
            "name " + (app.config.get("name") or "-")]


def lines_setup(app, show_code):
    from spot import setup

    out = ["SET-UP", "join wifi", setup.ssid_of(app)]
    if show_code:
        code = app.secrets.get("pairing_code")
        out += ["with code", code.decode() if code else "none"]
    else:
        out += ["code: press the", "button"]
    out += ["then open", "192.168.4.1"]
    return out


class Display:
    def __init__(self, app, panel):
        self.app = app
        self.panel = panel
        self.page = 0
        self.code_until = None  # ticks_ms until which the set-up page shows the pairing code
        self.shown = None
        self.bat = None

    def press(self):
        """A short press: the next page (on the set-up page: the pairing code for a minute)."""
        if getattr(self.app, "setup", None) is not None:
            self.code_until = self.app.clock.ticks_ms()
        else:
            self.page = (self.page + 1) % 2
        self.shown = None

    def lines(self):
        app = self.app
        if getattr(app, "setup", None) is not None:
            now = app.clock.ticks_ms()
            show = self.code_until is not None and ticks_diff(now, self.code_until) < CODE_SHOWN_MS
            return lines_setup(app, show)
        role = app.config.get("role")
        out = None
        if role == "hotspot":
            out = lines_hotspot(app, self.page)
        elif role == "node":
            out = lines_node(app, self.page)
        if out is None:
            out = lines_board(app)
        elif self.bat:  # nothing (or 0 V) without a battery
            out.append("bat %.2f V" % (self.bat / 1000))
        return out

    def draw(self):
        lines = self.lines()
        if lines == self.shown:
            return False
        fb = self.panel.fb
        fb.fill(0)
        for i, text in enumerate(lines[:LINES]):
            fb.text(text[:16], 0, i * 8, 1)
        self.panel.show()
        self.shown = lines
        return True

    async def run(self):
        n = 0
        while True:
            if n % 30 == 0:  # the battery moves slowly: read it every 30 s
                self.bat = battery_mv(self.app.board)
            n += 1
            try:
                self.draw()
            except OSError:  # a glitch on the bus: drawn again at the next refresh
                self.shown = None
            await self.app.clock.sleep_ms(REFRESH_MS)


def start(app):
    """The display of the board, drawing: a Display, or None (no display, or it does not answer)."""
    from spot.parts import Parts

    bus = Parts(app.board).display_bus()
    if bus is None:
        return None
    i2c, o = bus
    if o["driver"] != "ssd1306":
        app.console.event("log", {"level": "warn", "msg": "display: the %s is not supported" % o["driver"]})
        return None
    try:
        panel = Ssd1306(i2c, o["addr"], o["width"], o["height"])
    except OSError as e:
        app.console.event("log", {"level": "warn", "msg": "display at 0x%02x does not answer: %s" % (o["addr"], e)})
        return None
    return Display(app, panel)
