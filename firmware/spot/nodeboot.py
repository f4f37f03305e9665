# Node start-up and the deep-sleep record, loaded only for them (spot.node._aux): building the
# node from the board profile and config, and the RTC-memory record that carries the session
# state (FCntUp, MAC state, duty-cycle off-times, the schedule) across a deep sleep.
import gc
import json
from array import array
from binascii import hexlify, unhexlify

from spot.clock import ticks_add, ticks_diff
from spot.node import RTC_MAGIC, Node
from spot.sensors import SensorError


def restore_rtc(node, data):
    """Resume from the RTC record written before deep sleep; False when there is none that
    matches the stored session (then flash alone is used, as after a power cut)."""
    if not data or data[:4] != RTC_MAGIC:
        return False
    try:
        st = json.loads(data[4:])
    except ValueError:
        return False
    lw, c = node.lw, node.lw.counters
    if st.get("addr") != c.devaddr or st.get("res") != c.up_reserved or not st["up"] <= c.up_reserved:
        return False
    c.fcnt_up = st["up"]
    m = lw.mac
    (m.dr, m.tx_power, m.nb_trans, m.rx1_dr_offset, m.rx2_freq, m.rx2_dr, m.rx1_delay, m.max_eirp,
     m.uplink_dwell, m.max_duty) = st["mac"]
    ch = st.get("ch")
    if ch:
        on = unhexlify(ch[0])
        if len(ch) == 1:
            m.channels.on[: len(on)] = on
        else:
            t = m.channels
            t.f, t.dl = array("I", unhexlify(ch[1])), array("I", unhexlify(ch[2]))
            t.lo, t.hi, t.on = bytearray(unhexlify(ch[3])), bytearray(unhexlify(ch[4])), bytearray(on)
    lw.adr_ack_cnt = st["adr"]
    lw.pending_answers = unhexlify(st["ans"])
    m.sticky = unhexlify(st["sticky"])
    slept = st["sleep"]
    now = node.clock.ticks_ms()
    for band, left in st["duty"]:
        if left > slept:
            lw.duty._free[band] = ticks_add(now, left - slept)
    node.base_ms = st["t"] + slept
    node.count, node.missed, node.last_down = st["n"], st["miss"], st["down"]
    node.hour_start, node.hour_used_ms = st["hs"], st["hu"]
    return True


def rtc_record(node, sleep_ms):
    lw, m = node.lw, node.lw.mac
    now = node.clock.ticks_ms()
    duty = [[band, ticks_diff(free, now)] for band, free in lw.duty._free.items() if ticks_diff(free, now) > 0]
    t = m.channels
    if m.fixed_plan:
        ch = [hexlify(t.on).decode()]
    else:
        ch = [hexlify(x).decode() for x in (t.on, bytes(t.f), bytes(t.dl), t.lo, t.hi)]
    st = {"addr": lw.counters.devaddr, "up": lw.counters.fcnt_up, "res": lw.counters.up_reserved,
          "mac": [m.dr, m.tx_power, m.nb_trans, m.rx1_dr_offset, m.rx2_freq, m.rx2_dr, m.rx1_delay, m.max_eirp,
                  m.uplink_dwell, m.max_duty],
          "ch": ch, "adr": lw.adr_ack_cnt, "ans": hexlify(lw.pending_answers).decode(),
          "sticky": hexlify(m.sticky).decode(), "duty": duty, "t": node.now(), "sleep": sleep_ms,
          "n": node.count, "miss": node.missed, "down": node.last_down, "hs": node.hour_start,
          "hu": node.hour_used_ms}
    data = RTC_MAGIC + json.dumps(st).encode()
    if len(data) > 2000:  # RTC user memory is 2 KB: channels fall back to the defaults
        st["ch"] = None
        data = RTC_MAGIC + json.dumps(st).encode()
    return data


def sleep(node, ms):
    """Deep sleep for ms: the RTC record first, then the board powers down."""
    gc.collect()
    node.board.save_rtc(rtc_record(node, ms))
    node.console.event("sleep", {"ms": ms, "heap_free": gc.mem_free()})
    node.board.deepsleep(ms)


def build(app):
    """The node from the board profile and config. Order matters for the heap: the radio's
    buffers first, then the LoRaWAN code, then sensors."""
    from spot import eui64, unload
    from spot.lorawan import region
    from spot.lorawan.stack import LoRaWAN
    from spot.lorawan.store import Counters

    board, config, clock, console = app.board, app.config, app.clock, app.console
    try:
        board.power_on()
    except (SensorError, OSError, ValueError) as e:
        console.event("log", {"level": "error", "msg": "power rails: %s" % e})
    radio = board.radio(clock)
    plan = region.get(config.get("region"), config.get("sub_band"), freq=config.get("single_freq"),
                      sf=config.get("single_sf"))
    from spot.sensors import setup

    sensors, report = setup.build(board, clock, config.get("sensors"))
    unload("spot.sensors.setup")
    console.event("sensors", report)
    lw = LoRaWAN(plan, radio, clock, Counters().load(), app.secrets, config.get("dev_eui") or
                 eui64(board.device_id()), config.get("join_eui"))
    node = Node(board, config, clock, console, lw, sensors)
    app.node = node
    if app.reset_cause == "deepsleep" and lw.restore():
        node.restore_rtc(board.rtc_data())
        board.save_rtc(b"")  # used once: a later reset falls back to flash
    return node
