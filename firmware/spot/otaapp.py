# The running app's part of updates over the air, loaded only when there is one (an update's
# state on flash) or when a hotspot takes them (ota_port): the report of a rollback, the health
# check of an app on trial and its window, and the listener of update sessions (spot.ota, loaded
# for each session). Kept out of spot.app so that a board without updates pays nothing for them.
import asyncio
import gc

from spot import unload

HEALTH_WINDOW_MS = 300000  # device time an app on trial has to pass its health check, each boot
BACKHAUL_GRACE_MS = 60000  # a hotspot's backhaul that has been retrying this long passes
TRIAL_BOOTS = 3  # otaboot.MAX_TRIAL_BOOTS
LISTEN_RETRY_MS = 10000  # device time between two tries for a port the update service could not have


def report(app):
    """At boot: an event for a rollback (once, at the first boot after it) or a trial boot."""
    st = app.update
    if st.get("phase") == "rolledback" and not st.get("reported"):
        app.console.event("ota", {"rolled_back": st.get("why"), "app": st.get("app"), "from": st.get("prev")})
        st["reported"] = True
        try:
            import otaboot

            otaboot.save(st)
        except OSError:
            pass
        unload("otaboot")
    elif st.get("phase") == "trial":
        app.console.event("ota", {"trial": st.get("app"), "boot": st.get("boots"), "of": TRIAL_BOOTS})


def healthy(app):
    """(passed, what is missing) of the health check of an app on trial: the console answers
    (this runs on its loop); a hotspot's radio answers and its backhaul is up or has been
    retrying for a minute; a node made an uplink or a join attempt."""
    if app.safe_mode:
        return False, "safe mode"
    role = app.config.get("role")
    if role == "hotspot":
        hs = app.hotspot
        if hs is None or app.radio_status() != "ok":
            return False, "the radio does not answer"
        if hs.backhaul != "up" and app.clock.uptime_ms() < BACKHAUL_GRACE_MS:
            return False, "the backhaul is not up"
    elif role == "node":
        node = app.node
        st = node.lw.stats if node is not None else {}
        if not (st.get("uplinks", 0) or st.get("joins", 0) or st.get("join_fail", 0)):
            return False, "no uplink or join attempt"
    return True, ""


async def trial(app):
    """An app on trial: passed once healthy; after HEALTH_WINDOW_MS without, back to the previous
    app (at the reset that follows)."""
    while True:
        ok, missing = healthy(app)
        if ok:
            import otaboot

            otaboot.passed()
            app.update = otaboot.state()
            unload("otaboot")
            app.console.event("ota", {"passed": app.app_info()["version"]})
            return
        if app.clock.uptime_ms() >= HEALTH_WINDOW_MS:
            import otaboot

            why = "no health check passed in %d minutes: %s" % (HEALTH_WINDOW_MS // 60000, missing)
            otaboot.failed(why)
            app.console.event("ota", {"failed": why})
            await app.clock.sleep_ms(100)
            app.board.reset()
            return
        await app.clock.sleep_ms(1000)


async def listen(app):
    """Take update sessions on ota_port: one at a time, spot.ota loaded for each and dropped after
    it, so that a hotspot waiting for updates holds only this socket and this task."""
    from spot.tcp import accept
    from spot.tcp import listen as listen_on

    port = app.config.get("ota_port")
    said = False
    while True:  # a port that cannot be had now (held by another service) is tried again, said once
        try:
            s = listen_on(port)
            break
        except OSError as e:
            if not said:
                app.console.event("log", {"level": "error", "msg": "updates over the air: port %d: %s (trying again)"
                                          % (port, e)})
                said = True
        await app.clock.sleep_ms(LISTEN_RETRY_MS)
    if said:
        app.console.event("log", {"level": "info", "msg": "updates over the air: listening on port %d" % port})
    app.ota_port = port
    while True:
        conn = await accept(s)
        app.ota_counts["sessions"] += 1
        if app.ota_busy:
            app.ota_counts["refused"] += 1
            try:
                conn.send(b'{"err": "busy", "msg": "another update is running"}\n')
            except OSError:
                pass
            conn.close()
            continue
        app.ota_busy = True
        asyncio.create_task(_session(app, conn))


async def _session(app, conn):
    try:
        from spot import ota

        await ota.Session(app).run(conn)
    except Exception as e:  # loading the session's code, or a fault in it: refused, the hotspot goes on
        gc.collect()
        app.ota_counts["refused"] += 1
        no_memory = isinstance(e, MemoryError)
        if not no_memory:
            app.console.event("log", {"level": "error", "msg": "update session: %s: %s" % (type(e).__name__, e)})
        try:
            conn.send(b'{"err": "no_memory", "msg": "out of memory: try again"}\n' if no_memory
                      else b'{"err": "internal", "msg": "the session failed"}\n')
            conn.close()
        except OSError:
            pass
    finally:
        app.ota_busy = False
        unload("spot.ota")
