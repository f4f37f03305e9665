# Keyboard interrupts off as the very first statement (MicroPython turned them on again for this
# script); spot.app turns them back on unless the board is locked in production mode. Everything
# is inside one try: an interrupt that still lands in the instants before that call, or any other
# error escaping the app, ends in a reset on a production board, never at the REPL prompt.
try:
    import micropython

    micropython.kbd_intr(-1)
    import os

    try:  # littlefs made consistent by a write operation before any read (otaboot.settle)
        os.remove("/.ota/settle")
    except OSError:
        pass
    _ota = False
    for _p in ("/.ota/state.json", "/.ota/state.json.bak"):
        try:
            os.stat(_p)
            _ota = True
        except OSError:
            pass
    if _ota:  # an update over the air: switch to it, count its boots on trial, or roll it back
        try:
            import otaboot

            otaboot.boot()
        except Exception as _ota_e:  # the app runs all the same (spot.app reports the update's state)
            import sys

            sys.print_exception(_ota_e)
        import sys

        sys.modules.pop("otaboot", None)  # its code is not needed again unless an update is on trial
        otaboot = None
    import spot.app

    spot.app.main()
except:  # bare: entered with no look for a pending interrupt on the way (docs/security.md)
    try:
        import micropython
        micropython.kbd_intr(-1)
    except:  # noqa: E722  (one more Ctrl-C, pending as that call returned: off again, for good)
        import micropython
        micropython.kbd_intr(-1)
    try:  # an app on trial that fails to start: a reset, so that its boots count towards the rollback
        with open("/.ota/state.json") as _f:
            _trial = '"phase": "trial"' in _f.read()
    except BaseException:
        _trial = False
    if _trial:
        from spot.board import reset_now
        reset_now()
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
    micropython.kbd_intr(3)  # a development board: what ended the app, printed, then the REPL
    raise
