# The deep-sleep record of a node, loaded only for it (spot.node._aux): the RTC-memory record that
# carries the session state (FCntUp, MAC state, duty-cycle off-times, the schedule) across a deep
# sleep, written before the board powers down and read back at the next start. It uses the node's
# public surface only and imports nothing of spot.node (docs/architecture.md, "Modules loaded for
# one call").
import gc
import json
from array import array
from binascii import hexlify, unhexlify

from spot.clock import ticks_add, ticks_diff

RTC_MAGIC = b"LSN1"


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
            lw.duty.off_until[band] = ticks_add(now, left - slept)
    node.base_ms = st["t"] + slept
    node.count, node.missed, node.last_down = st["n"], st["miss"], st["down"]
    node.hour_start, node.hour_used_ms = st["hs"], st["hu"]
    return True


def rtc_record(node, sleep_ms):
    lw, m = node.lw, node.lw.mac
    now = node.clock.ticks_ms()
    duty = [[b, ticks_diff(t, now)] for b, t in lw.duty.off_until.items() if ticks_diff(t, now) > 0]
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
