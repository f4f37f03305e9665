# The board's button (profile "button"): a short press turns the display's page (or shows the
# pairing code on the set-up page), a press held LONG_MS restarts the board into set-up: its
# access point with the pairing code (spot.setup). Waits on the pin, polls only while it is held.
from micropython import const

from spot.clock import ticks_diff

LONG_MS = const(5000)
DEBOUNCE_MS = const(30)


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
