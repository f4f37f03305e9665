# Keyboard interrupts off as the very first statement (MicroPython turned them on again for this
# script); spot.app turns them back on unless the board is locked in production mode. Everything
# is inside one try: an interrupt that still lands in the instants before that call, or any other
# error escaping the app, ends in a reset on a production board, never at the REPL prompt.
try:
    import micropython

    micropython.kbd_intr(-1)
    import spot.app

    spot.app.main()
except BaseException as _e:
    import micropython

    micropython.kbd_intr(-1)
    try:
        with open("/lock", "rb") as _f:
            _production = _f.read(1) == b"P"
    except OSError:
        _production = False
    except BaseException:
        _production = True  # unknown (no heap?): the safe side
    if _production:
        from spot.board import reset_now

        reset_now()
    if not isinstance(_e, KeyboardInterrupt):
        import sys

        sys.print_exception(_e)
    micropython.kbd_intr(3)  # a development board: the REPL, as a developer's Ctrl-C expects
