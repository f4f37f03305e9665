# Node start-up, loaded only for it (the App loads it, builds the node and drops it): the node from
# the board profile and config. It depends on spot.node; nothing in spot.node depends on it.
from spot.node import Node
from spot.sensors import SensorError


def build(app):
    """The node from the board profile and config. Order matters for the heap: the radio's
    buffers first, then the LoRaWAN code, then sensors."""
    from spot import eui64, unload
    from spot.lorawan import region
    from spot.lorawan.stack import LoRaWAN
    from spot.lorawan.store import Counters

    board, config, clock, console = app.board, app.config, app.clock, app.console
    notes = []  # events for after the boot event (the node is built before it, App.run)
    try:
        board.power_on()
    except (SensorError, OSError, ValueError) as e:
        notes.append(("log", {"level": "error", "msg": "power rails: %s" % e}))
    from spot.radio import RadioError

    try:
        radio = board.radio(clock)
    except RadioError as e:  # absent or silent: the node reports it and opens it again later
        radio, fault = None, e
    else:
        fault = None
    plan = region.get(config.get("region"), config.get("sub_band"), config.get("lbt"), freq=config.get("single_freq"),
                      sf=config.get("single_sf"), base=config.get("single_region"))
    plan.repeater = config.get("repeater")
    from spot.sensors import setup

    sensors, report = setup.build(board, clock, config.get("sensors"))
    unload("spot.sensors.setup")
    notes.append(("sensors", report))
    lw = LoRaWAN(plan, radio, clock, Counters().load(), app.secrets, config.get("dev_eui") or
                 eui64(board.device_id()), config.get("join_eui"))
    node = Node(board, config, clock, console, lw, sensors)
    node.notes = notes
    if fault is not None:
        node.radio_lost(fault, report=False)  # reported once the boot is (App.run)
    app.node = node
    if app.reset_cause == "deepsleep" and lw.restore():
        from spot.nodesleep import restore_rtc

        restore_rtc(node, board.rtc_data())
        unload("spot.nodesleep")
        board.save_rtc(b"")  # used once: a later reset falls back to flash
    return node
