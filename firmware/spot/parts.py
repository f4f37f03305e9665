# The board's own parts beyond the radio: its set-up access point, the port of its web pages, its
# button and its display's bus, made from the profile: Parts(app.board). Loaded only by a board that
# uses them (the boot path of every role stays as small as it was); `machine` comes from spot.board,
# the one module that imports it.


class Parts:
    def __init__(self, board):
        from spot import board as board_mod

        self.board = board
        self.machine = board_mod.machine
        self._vboard = board_mod._vboard  # pyright: ignore[reportPrivateUsage]

    def access_point(self, ssid, passphrase):
        """Open the set-up access point: WPA2 with the passphrase, never open."""
        if self._vboard is not None:
            from _vwifi import AUTH_WPA2_PSK, VirtualAp  # pyright: ignore[reportMissingImports]

            ap = VirtualAp()
            wpa2 = AUTH_WPA2_PSK
        else:
            import network  # pyright: ignore[reportMissingImports]

            ap = network.WLAN(network.AP_IF)
            wpa2 = network.AUTH_WPA2_PSK
        ap.active(True)
        ap.config(essid=ssid, password=passphrase, authmode=wpa2)
        return ap

    def http_port(self, port):
        """The port a web server of the board listens on: the one asked for, or on the virtual
        board the loopback port its supervisor gave it."""
        return self._vboard.HTTP_PORT if self._vboard is not None else port

    def button(self):
        """The board's button (Button), or None on a board without one."""
        b = self.board.profile.get("button")
        if not b:
            return None
        return Button(self.machine, self._vboard, b["pin"], b.get("active_low", True))

    def display_bus(self):
        """(I2C bus, oled profile) of the board's display, powered and out of reset; None without."""
        o = self.board.profile.get("oled")
        if not o:
            return None
        v = (self.board.profile.get("power") or {}).get("vext")
        if v:  # the display hangs on the switched rail on Heltec boards
            from spot.power import vext_level

            self.machine.Pin(v["pin"], self.machine.Pin.OUT, value=vext_level(v.get("active_low", False), True))
        if o.get("reset") is not None:
            import time

            rst = self.machine.Pin(o["reset"], self.machine.Pin.OUT, value=0)
            time.sleep_ms(2)
            rst.value(1)
        i = o.get("i2c") or self.board.profile.get("i2c")
        return self.machine.SoftI2C(scl=self.machine.Pin(i["scl"]), sda=self.machine.Pin(i["sda"]), freq=400000), o


class Button:
    """The board's button: pressed(), and changed() to await a press or a release (a pin interrupt
    setting a flag on a board; the supervisor's datagrams on the virtual board)."""

    def __init__(self, machine, vboard, pin, active_low):
        self._v = None
        if vboard is not None:
            import _vwifi  # pyright: ignore[reportMissingImports]

            self._v = _vwifi.BUTTON  # the pin's button, made at boot (machine.Pin reads it too)
            return
        import asyncio

        self._v = None
        self._low = active_low
        self.flag = asyncio.ThreadSafeFlag()
        p = machine.Pin
        self._pin = p(pin, p.IN, p.PULL_UP if active_low else p.PULL_DOWN)
        self._pin.irq(lambda _p: self.flag.set(), p.IRQ_FALLING | p.IRQ_RISING)

    def pressed(self):
        if self._v is not None:
            return bool(self._v.pressed())
        return self._pin.value() == (0 if self._low else 1)

    async def changed(self):
        if self._v is not None:
            from spot.aio import readable

            await readable(self._v.sock)  # pyright: ignore[reportGeneralTypeIssues]
        else:
            await self.flag.wait()
