# The node role's schedule and rules (spot.node) around a stand-in for the LoRaWAN stack that
# records what it was asked to send: confirmed every Nth, retries with back-off, rejoin after a
# long silence, payload split at the data rate's limit, a failing sensor, downlink commands, and
# the deep-sleep record in RTC memory. The real stack is exercised whole in tests/e2e.
import asyncio
import json
import struct

from fwtest import close_flashes, eq, fresh_flash
from nodefakes import Clock, Console
from spot import eui64
from spot.config import Config
from spot.lorawan import region
from spot.lorawan.dutycycle import DutyCycle
from spot.lorawan.mac import MacState
from spot.lorawan.store import Counters
from spot.node import Node, channels
from spot.nodesleep import RTC_MAGIC
from spot.sensors import SensorError


class Down:
    def __init__(self, fport, payload, fcnt=1):
        self.fport, self.payload, self.fcnt = fport, payload, fcnt


class Res:
    def __init__(self, fcnt, ack, down=None):
        self.fcnt, self.ack, self.downlink, self.window = fcnt, ack, down, 1 if down else 0
        self.airtime_us, self.freq, self.dr = 61696, 868100000, 5


class FakeStack:
    """What Node uses of spot.lorawan.stack.LoRaWAN; acks/downlinks are scripted per uplink."""

    def __init__(self, plan, fresh=True):
        self.region = plan
        self.mac = MacState(plan)
        self.mac.dr = 5
        self.duty = DutyCycle(plan)
        self.counters = Counters("/n/lorawan.json").load()
        if fresh:
            self.counters.new_session("01020304")
        self.session = object()
        self.devaddr = b"\x04\x03\x02\x01"
        self.pending_answers = b""
        self.adr_ack_cnt = 0
        self.stats = {"uplinks": 0}
        self.last_snr = 7
        self.sent = []  # (fport, payload, confirmed, fcnt)
        self.acks = []  # ack for each uplink in turn (missing: False)
        self.downs = {}  # uplink index -> Down
        self.joins = 0
        self.radio = object()  # a radio that works (tests/firmware/test_node_faults.py: real drivers)

    def set_radio(self, radio):
        self.radio = radio

    async def send(self, fport, payload, confirmed=False):
        limit = self.region.max_payload(self.mac.dr)
        if len(payload) > limit:
            raise ValueError("too big")
        i = len(self.sent)
        fcnt = self.counters.next_fcnt_up()
        self.sent.append((fport, bytes(payload), confirmed, fcnt))
        self.stats["uplinks"] += 1
        ack = confirmed and (self.acks[i] if i < len(self.acks) else False)
        return Res(fcnt, ack, self.downs.get(i))

    async def join(self, dr=None):
        self.joins += 1
        self.session = object()
        return True

    def restore(self):
        return True


class Sensor:
    def __init__(self, name, values, error=None):
        self.NAME = name
        self.values = values
        self.error = error

    async def read(self):
        if self.error:
            raise SensorError(self.error, "%s: %s" % (self.NAME, self.error))
        return self.values


def _node(sensors=None, **cfg):
    fresh_flash("/n")
    config = Config("/n/config.json").load()
    config.set(dict({"role": "node", "retries": 0}, **cfg))
    lw = FakeStack(region.get("EU868"))
    if sensors is None:
        sensors = [Sensor("bme280", (21.5, 45.0, 1013.2)), Sensor("battery", (4.05, 90))]
    n = Node(None, config, Clock(), Console(), lw, sensors)
    return n, lw


def _cycles(n, k):
    async def go():
        for _ in range(k):
            await n.cycle()

    asyncio.run(go())


def test_channels_follow_config_order_one_per_value():
    s = [Sensor("bme280", ()), Sensor("gps", ()), Sensor("battery", ()), Sensor("ds18b20", ())]
    eq(channels(s), [1, 4, 5, 6])
    eq(eui64("024c53115089"), "024C53FFFE115089")


def test_lpp_uplinks_and_confirmed_every_nth():
    n, lw = _node(confirm_every=3)
    _cycles(n, 6)
    eq([c for _, _, c, _ in lw.sent], [False, False, True, False, False, True])
    eq([f for _, _, _, f in lw.sent], [0, 1, 2, 3, 4, 5])
    fport, data, _, _ = lw.sent[0]
    eq(fport, 2)
    # LPP: ch1 temperature 21.5 (0x00D7), ch2 humidity 45 % (0x5A), ch3 barometer 1013.2 (0x2794),
    # ch4 analog 4.05 (0x0195)
    eq(data, bytes.fromhex("016700d7 02685a 03732794 04020195".replace(" ", "")))
    ev = n.console.of("uplink")[0]
    eq((ev["fcnt"], ev["sf"], ev["bytes"], ev["airtime_ms"]), (0, 7, 15, 62))
    eq(ev["duty_left_ms"], 36000 - 62)  # 1 % of an hour in the 868.0-868.6 MHz band


def test_missing_ack_is_retried_with_back_off_then_counted():
    n, lw = _node(confirm_every=1, retries=2)
    t0 = n.clock.ms
    _cycles(n, 1)
    eq(len(lw.sent), 3)  # the frame and two retries, each a new FCnt
    eq([f for _, _, _, f in lw.sent], [0, 1, 2])
    eq(n.missed, 1)
    eq(n.clock.ms - t0 >= 2000 + 4000, True)  # 2 s then 4 s (plus jitter)
    lw.acks = [False, False, False, True]
    _cycles(n, 1)
    eq(len(lw.sent), 4)  # ACKed at once: no retry
    eq(n.missed, 0)


def test_rejoin_after_a_long_silence_only_when_unanswered():
    n, lw = _node(confirm_every=0, rejoin_after=3600)
    _cycles(n, 1)
    eq(lw.sent[-1][2], False)
    n.clock.ms += 3601 * 1000
    eq(n.rejoin_due(), False)  # silence alone: first a confirmed uplink checks the link
    _cycles(n, 1)
    eq(lw.sent[-1][2], True)
    eq(n.rejoin_due(), True)  # and it went unanswered

    async def go():
        await n.rejoin()

    asyncio.run(go())
    eq(lw.joins, 1)
    eq(n.console.of("join")[0]["rejoin"], True)
    eq(n.rejoin_due(), False)


def test_failing_sensor_reported_others_still_sent():
    sensors = [Sensor("bme280", (), error="absent"), Sensor("battery", (3.9, 60))]
    n, lw = _node(sensors)
    _cycles(n, 1)
    eq(lw.sent[0][1], bytes.fromhex("0402" + "0186"))  # channel 4 as always, 3.90 V
    errs = [e for e in n.console.of("reading") if "error" in e]
    eq(errs[0]["sensor"], "bme280")
    eq(errs[0]["error"], "absent")


def test_join_data_rate_never_below_what_the_dwell_time_allows():
    """Automatic join DRs step down from DR5 every two failures, but never below the slowest DR
    that carries a payload: DR2 in AS923 with the 400 ms uplink dwell time (RP002; LoRaMac-node
    AS923_DWELL_LIMIT_DATARATE), so attempts 9 and later keep DR2 instead of DR1/DR0."""
    n, lw = _node()
    eq([n.join_dr(a) for a in range(1, 16)], [5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 0], "EU868")
    lw.region = region.get("AS923-1")
    lw.mac = MacState(lw.region)
    eq([n.join_dr(a) for a in range(1, 16)], [5, 5, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2], "AS923-1")
    lw.mac.uplink_dwell = False  # a TxParamSetupReq lifted the dwell time
    eq(n.join_dr(15), 0)


def test_payload_split_at_the_data_rate_limit():
    sensors = [Sensor("gps", (48.85, 2.29, 35.0))] * 7  # 7 x 11 bytes = 77 > 51 at DR0
    n, lw = _node(sensors)
    lw.mac.dr = 0
    _cycles(n, 1)
    sizes = [len(d) for _, d, _, _ in lw.sent]
    eq(sizes, [44, 33])
    eq(b"".join(d for _, d, _, _ in lw.sent)[0], 1)
    eq(sum(sizes), 77)


def test_downlink_commands():
    n, lw = _node()
    lw.downs = {0: Down(10, b"\x01\x00\x00\x02\x58"), 1: Down(10, b"\x02"), 3: Down(10, b"\x01\x00\x00\x00\x01"),
                4: Down(10, b"\x7f"), 5: Down(10, b"\x03\x04")}
    _cycles(n, 6)
    eq(n.config.get("uplink_interval"), 600)
    with open("/n/config.json") as f:  # stored (read as the file it is: a second Config would hold its
        eq(json.load(f)["uplink_interval"], 600)  # defaults beside the node's)
    downs = n.console.of("downlink")
    eq(downs[0]["cmd"], {"uplink_interval": 600})
    status = [d for p, d, _, _ in lw.sent if p == 10]
    eq(len(status), 1)
    op, a, b, c, interval, ups, snr, mv, failed = struct.unpack(">B3BIIbHB", status[0])
    eq((op, interval, snr, mv, failed), (2, 600, 7, 4050, 0))
    eq("cmd" in downs[2], False)  # 1 s is out of range: refused, nothing stored
    eq(n.config.get("uplink_interval"), 600)
    eq(downs[3]["error"], "unknown command 0x7f")
    eq(n.config.get("confirm_every"), 4)


def test_rtc_record_restores_session_mac_duty_and_schedule():
    n, lw = _node()
    _cycles(n, 3)
    lw.mac.dr, lw.mac.tx_power, lw.adr_ack_cnt = 3, 2, 9
    lw.mac.channels.put(3, 867100000, 0, 5)
    lw.duty.record(868100000, 61696, n.clock.ticks_ms())  # band closed for ~6.1 s
    n.count, n.missed = 3, 1
    rec = n.rtc_record(5000)
    eq(rec[:4], RTC_MAGIC)
    eq(len(rec) < 2048, True)
    # wake: a new boot, counters from flash (reserved block), the rest from RTC memory
    lw2 = FakeStack(region.get("EU868"), fresh=False)
    eq(lw2.counters.fcnt_up, 16)  # flash alone would skip to the reservation
    n2 = Node(None, n.config, Clock(), Console(), lw2, n.sensors)
    eq(n2.restore_rtc(rec), True)
    eq(lw2.counters.fcnt_up, 3)  # no FCnt skipped across the sleep
    eq((lw2.mac.dr, lw2.mac.tx_power, lw2.adr_ack_cnt, n2.count, n2.missed), (3, 2, 9, 3, 1))
    eq(lw2.mac.channels.row(3), (867100000, 0, 5, True, 0))
    left = lw2.duty.wait_ms(868100000, 61696, n2.clock.ticks_ms())
    eq(left, 62 * 99 - 5000)  # the off-time (99 x 62 ms on air) less the sleep
    eq(n2.now() >= n.now() + 5000, True)  # node time runs on across the sleep
    # a record from another session, or garbage, is not used
    lw3 = FakeStack(region.get("EU868"), fresh=False)
    lw3.counters.devaddr = "0a0b0c0d"
    eq(Node(None, n.config, Clock(), Console(), lw3, n.sensors).restore_rtc(rec), False)
    eq(Node(None, n.config, Clock(), Console(), lw3, n.sensors).restore_rtc(RTC_MAGIC + b"{x"), False)
    eq(json.loads(rec[4:])["up"], 3)


def teardown_module():
    close_flashes("/n")
    asyncio.new_event_loop()
