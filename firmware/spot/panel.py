# The board's panel beside its role: the set-up access point (spot.setup) instead of the role when
# it is wanted, a hotspot's status page (http_port), the display (config display, on a board that
# has one) and, with the display, the button: a short press turns the page (or shows the pairing
# code on the set-up page), a long one restarts into set-up. Made at start-up with the role's own
# buffers, while the heap is in one piece; loaded only when one of them may be on (spot.app).
import asyncio
import gc

from spot.parts import Parts


def build(app, role, enter_names):
    """(role, panel): the role this boot runs ("setup" while the access point is wanted) and what
    start() needs; enter_names(role) enters the names of the role's occasional modules first."""
    from spot import setup as setup_mode

    why = setup_mode.wanted(app)
    if why is not None:
        role = "setup"  # the access point instead of the role, till the values come
    else:
        from spot import unload

        unload("spot.setup")
    enter_names(role)
    status = None
    if role == "hotspot" and app.config.get("http_port"):
        from spot.hotspot import status as status_page

        status = status_page.prepare(app)
    if app.config.get("display") and app.board.profile.get("oled"):
        from spot import display

        app.display = display.start(app)
    button = None
    if getattr(app, "display", None) is not None:
        button = Parts(app.board).button()
        if button is not None:
            from spot import button as _button  # noqa: F401 (loaded with the others)
    gc.collect()
    return role, (why, status, button)


def start(app, panel):
    why, status, button = panel
    if why is not None:
        from spot import setup as setup_mode

        asyncio.create_task(setup_mode.run(app, why))
    if status is not None:
        from spot.hotspot import status as status_page

        asyncio.create_task(status_page.run(app, status))
    if getattr(app, "display", None) is not None:
        asyncio.create_task(app.display.run())
    if button is not None:
        from spot import button as _button

        asyncio.create_task(_button.run(app, button))
