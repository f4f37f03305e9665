# The board's button (profile "button"): a short press turns the display's page (or shows the
# pairing code on the set-up page), a press held LONG_MS restarts the board into set-up: its
# access point with the pairing code (spot.setup). Waits on the pin, polls only while it is held.
# A hotspot on a board with a button runs it with or without a display (spot.app, spot.panel).
from micropython import const

from spot.clock import ticks_diff

LONG_MS = const(5000)
DEBOUNCE_MS = const(30)


def make(board):
    """The board's button, or None on a board without one; `machine` comes from spot.board, the
    one module that imports it."""
    b = board.profile.get("button")
    if not b:
        return None
    from spot import board as board_mod

    return Button(board_mod.machine, board_mod._vboard, b["pin"], b.get("active_low", True))


async def run(app, button):
    clock = app.clock
    while True:
        await button.changed()
        if not button.pressed():
            continue
        start = clock.ticks_ms()
        held = 0
        while button.pressed() and held < LONG_MS:
            await clock.sleep_ms(50)
            held = ticks_diff(clock.ticks_ms(), start)
        if held >= LONG_MS:
            app.console.event("button", {"held_ms": held, "then": "setup"})
            with open("/setup", "wb") as f:  # spot.setup.FLAG, taken at the next boot
                f.write(b"1")
            await clock.sleep_ms(100)
            app.board.reset()
            return
        if held >= DEBOUNCE_MS:
            app.console.event("button", {"held_ms": held})
            d = getattr(app, "display", None)
            if d is not None:
                d.press()
                d.draw()


class Button:
    """The board's button: pressed(), and changed() to await a press or a release (a pin interrupt
    setting a flag on a board; the supervisor's datagrams on the virtual board)."""

    def __init__(self, machine, vboard, pin, active_low):
        self._v = None
        if vboard is not None:
            from _vbutton import BUTTON  # pyright: ignore[reportMissingImports]

            self._v = BUTTON
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
