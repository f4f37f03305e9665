# The app with Ctrl-C off. Whatever ends it (an error, a Ctrl-C in the instants before the first
# call, or another while a handler runs) ends in a reset on a production board, never at the REPL
# prompt; see docs/security.md, "Ctrl-C at boot". Comments are few: this file is compiled at boot.
try:
    try:
        import micropython
        micropython.kbd_intr(-1)
        import os
        try:
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
        if _ota:
            try:
                import otaboot
                otaboot.boot()
            except Exception as _ota_e:
                import sys
                sys.print_exception(_ota_e)
            import sys
            sys.modules.pop("otaboot", None)
            otaboot = None
        import spot.app
        spot.app.main()
    except BaseException as _e:
        import micropython
        micropython.kbd_intr(-1)
        try:
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
            _production = True
        if _production:
            from spot.board import reset_now
            reset_now()
        if not isinstance(_e, KeyboardInterrupt):
            import sys
            sys.print_exception(_e)
        micropython.kbd_intr(3)
except:  # noqa: E722
    try:
        import micropython
        micropython.kbd_intr(-1)
    except:  # noqa: E722
        import micropython
        micropython.kbd_intr(-1)
    try:
        with open("/lock", "rb") as _f:
            _production = _f.read(1) == b"P"
    except OSError:
        _production = False
    except BaseException:
        _production = True
    if _production:
        from spot.board import reset_now
        reset_now()
    micropython.kbd_intr(3)
