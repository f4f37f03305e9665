# Keyboard interrupts stay off until spot.app has read whether the device is locked in production
# mode (then they stay off: no way into the REPL); otherwise it turns them back on at once.
import micropython

micropython.kbd_intr(-1)
import spot.app  # noqa: E402

spot.app.main()
