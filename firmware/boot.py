# Runs on every boot, before main.py; all start-up lives in spot.app (failures go to the crash log).
# Keyboard interrupts off first: MicroPython turns them on before each script it runs, so this
# covers boot.py only and main.py turns them off again as its own first statement.
import micropython

micropython.kbd_intr(-1)
