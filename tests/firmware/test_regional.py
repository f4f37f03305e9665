# Regional parameters to the letter: one test per finding of the check against ChirpStack's lrwn,
# brocaar/lorawan and LoRaMac-node (RP002). The tables themselves are checked value by value by
# tests/host/test_regional_conformance.py from tests/data/regional/conformance.json.
from binascii import unhexlify

from fwtest import eq, raises
from spot.lorawan import dutycycle, join, mac, region
from spot.radio import airtime


def h(s):
    return unhexlify(s.replace(" ", ""))


def _f(hz):
    v = hz // 100
    return bytes((v & 0xFF, (v >> 8) & 0xFF, v >> 16))


def test_1_cn470_link_adr_masks_channels_16_to_95():
    """ChMaskCntl 0-5 set channels 16n..16n+15 (LoRaMac-node RegionCN470 1.0.x, brocaar band.go
    GetEnabledUplinkChannelIndicesForLinkADRReqPayloads), 6 turns all on, 7 is refused."""
    st = mac.MacState(region.get("CN470"))
    # channels 0-15 off, 16-31 only 16 and 17 on, 80-95 only 95 on: one block of three requests
    eq(mac.handle(st, h("03 50 0000 00" + "03 50 0300 10" + "03 50 0080 50")), h("03 07 03 07 03 07"))
    on = list(range(32, 80))
    on.insert(0, 17)
    on.insert(0, 16)
    on.append(95)
    eq(st.enabled(), on)
    eq(mac.handle(st, h("03 50 0000 60")), h("03 07"))  # ChMaskCntl 6: all 96 on
    eq(len(st.enabled()), 96)
    eq(mac.handle(st, h("03 50 FFFF 70")), h("03 06"))  # ChMaskCntl 7: RFU, mask NACK, nothing changes
    eq(len(st.enabled()), 96)


def test_2_cn470_cflist_carries_six_masks_for_96_channels():
    cf = h("FF00 0000 0000 0000 0000 0000") + bytes(3) + b"\x01"  # channels 0-7 only
    st = join.settings(region.get("CN470"), 0, 1, cf)
    eq(st.enabled(), list(range(8)))
    cf = bytes(10) + h("0080") + bytes(3) + b"\x01"  # the sixth mask: channel 95 only
    eq(join.settings(region.get("CN470"), 0, 1, cf).enabled(), [95])


def test_3_payload_sizes_follow_the_networks_repeater_setting():
    """LoRaWAN 1.0.3 tables (lrwn cn470.rs/eu868.rs/as923.rs, brocaar band_cn470_510.go): 242 at
    CN470 DR4/DR5 like EU868 and AS923; 222 everywhere above 222 on a repeater-compatible network."""
    for name in ("CN470", "EU868", "AS923-1"):
        r = region.get(name)
        eq((r.max_payload(4), r.max_payload(5)), (242, 242), name)
        r.repeater = True
        eq((r.max_payload(3), r.max_payload(4), r.max_payload(5)), (115, 222, 222), name)
    u = region.get("US915")
    u.repeater = True
    eq([u.max_payload(d) for d in (0, 3, 4, 8, 9, 10)], [11, 222, 222, 33, 109, 222])
    s = region.get("SINGLE", freq=470300000, sf=7, base="CN470")
    eq(s.max_payload(5), 242)
    s.repeater = True
    eq(s.max_payload(5), 222)


def test_4_as923_rx1_dr_offsets_6_and_7_and_a_join_accept_checked_first():
    a = region.get("AS923-1")
    eq([a.rx1_dr(3, o) for o in range(8)], [3, 2, 1, 0, 0, 0, 4, 5])
    eq((a.rx1_dr(5, 6), a.rx1_dr(6, 7)), (6, 7))  # capped at DR7 (lrwn as923.rs rx1_data_rate_table)
    f = _f(923200000)
    st = mac.MacState(a)
    eq(mac.handle(st, bytes((0x05, 0x72)) + f), h("05 07"))  # RXParamSetupReq offset 7, RX2 DR2
    eq((st.rx1_dr_offset, st.rx2_dr), (7, 2))
    e = mac.MacState(region.get("EU868"))
    eq(mac.handle(e, bytes((0x05, 0x60)) + _f(869525000)), h("05 03"), "EU868 has offsets 0-5")
    raises(region.RegionError, region.get("EU868").rx1_dr, 5, 6)
    # a Join-Accept's DLSettings: an offset or RX2 DR the region lacks is refused before anything
    eq(join.settings(region.get("EU868"), 0x60, 1, None), None)
    eq(join.settings(region.get("US915"), 0x40, 1, None), None, "US915 has offsets 0-3")
    eq(join.settings(region.get("US915"), 0x02, 1, None), None, "US915 RX2 must be a downlink DR (8-13)")
    eq(join.settings(region.get("EU868"), 0x07, 1, None), None, "EU868 DR7 is FSK")
    eq(join.settings(a, 0x62, 1, None).rx1_dr_offset, 6)


def test_5_as923_rx1_dr_floor_with_downlink_dwell_time():
    a = region.get("AS923-2")
    eq([a.rx1_dr(d, 0, True) for d in range(6)], [2, 2, 2, 3, 4, 5])
    eq([a.rx1_dr(d, 0, False) for d in range(6)], [0, 1, 2, 3, 4, 5])
    eq(a.rx1_dr(4, 5, True), 2)
    st = mac.MacState(a)
    eq(st.downlink_dwell, True)  # the default until a TxParamSetupReq says otherwise
    mac.handle(st, h("09 04"))  # DownlinkDwellTime 0, UplinkDwellTime 0, MaxEIRP index 4
    eq((st.downlink_dwell, st.uplink_dwell), (False, False))
    mac.handle(st, h("09 24"))
    eq((st.downlink_dwell, st.uplink_dwell), (True, False))


def test_6_as923_tx_power_is_an_offset_from_the_current_max_eirp():
    a = region.get("AS923-1")
    st = mac.MacState(a)
    eq(a.tx_power(1, st.max_eirp), 14)  # default MaxEIRP 16 dBm
    eq(mac.handle(st, h("09 34")), h("09"))  # MaxEIRP index 4: 14 dBm
    eq((st.max_eirp, a.tx_power(0, st.max_eirp), a.tx_power(1, st.max_eirp)), (14, 14, 12))
    mac.handle(st, h("09 37"))  # index 7: 20 dBm, above the region's default: honoured
    eq(a.tx_power(0, st.max_eirp), 20)
    e = mac.MacState(region.get("EU868"))
    eq(mac.handle(e, h("09 37")), b"", "EU868 does not implement TxParamSetupReq: no answer")
    s = mac.MacState(region.get("SINGLE", freq=923200000, sf=9, base="AS923-1"))
    eq(mac.handle(s, h("09 34")), h("09"), "a single-channel plan in AS923 answers it")


def test_7_as923_uplinks_never_below_dr2_with_dwell_time():
    a = region.get("AS923-1")
    eq((a.min_dr(True), a.min_dr(False), region.get("EU868").min_dr(True)), (2, 0, 0))
    st = mac.MacState(a)
    eq(mac.handle(st, h("03 10 0300 01")), h("03 05"), "LinkADRReq to DR1 refused (no payload)")
    eq(mac.handle(st, h("03 20 0300 01")), h("03 07"))
    raises(region.RegionError, region.get, "SINGLE", freq=923200000, sf=11, base="AS923-1")


def test_8_eu868_sub_bands_and_gaps():
    r = region.get("EU868")
    eq([r.duty_band(f)[2] for f in (863100000, 864900000, 865100000, 868100000, 868900000, 869525000, 869850000)],
       [1000, 1000, 100, 100, 1000, 10, 100])
    eq([r.duty_band(f) for f in (868650000, 869300000, 869675000)], [None, None, None])
    st = mac.MacState(r)
    for f in (868650000, 869300000, 869675000, 870100000):
        eq(mac.handle(st, b"\x07\x03" + _f(f) + b"\x50"), h("07 02"), "NewChannelReq at %d" % f)
    eq(mac.handle(st, b"\x07\x03" + _f(863500000) + b"\x50"), h("07 03"))
    eq(st.channels.row(3)[0], 863500000)
    eq(mac.handle(st, b"\x0a\x00" + _f(869300000)), h("0A 02"), "DlChannelReq into a gap")
    eq(mac.handle(st, b"\x05\x00" + _f(869300000)), h("05 06"), "RX2 into a gap")
    # 0.1 % below 865 MHz: a 200 ms frame closes the sub-band for 199.8 s
    d = dutycycle.DutyCycle(r)
    d.record(863500000, 200000, 0)
    eq(d.wait_ms(863500000, 200000, 0), 199800)
    cf = _f(867100000) + _f(869300000) + _f(867500000) + bytes(6) + b"\x00"  # a gap in a CFList: skipped
    eq([f for f in join.settings(r, 0, 1, cf).channels.f], [868100000, 868300000, 868500000, 867100000, 0, 867500000])
    raises(region.RegionError, region.get, "SINGLE", freq=869300000, sf=9)


def test_9_deleted_channels_and_channel_16_and_above():
    st = mac.MacState(region.get("EU868"))
    eq(mac.handle(st, b"\x07\x03" + _f(867100000) + b"\x50"), h("07 03"))
    eq(mac.handle(st, b"\x07\x03" + bytes(3) + b"\x50"), h("07 03"))  # frequency 0: channel 3 deleted
    eq(st.enabled(), [0, 1, 2])
    eq(mac.handle(st, h("03 50 0F00 01")), h("03 06"), "LinkADRReq enabling deleted channel 3")
    eq(st.enabled(), [0, 1, 2])
    eq(mac.handle(st, h("03 50 0000 61")), h("03 07"))  # ChMaskCntl 6: the defined channels only
    eq(st.enabled(), [0, 1, 2])
    eq(mac.handle(st, b"\x07\x10" + _f(867100000) + b"\x50"), h("07 00"), "ChIndex 16")
    eq(len(st.channels), 4)


def test_10_single_channel_plan_obeys_its_band():
    s = region.get("SINGLE", freq=868100000, sf=9)
    d = dutycycle.DutyCycle(s)
    d.record(868100000, 200000, 0)
    eq(d.wait_ms(868100000, 200000, 0), 19800)  # EU868 1 %: 200 ms on air, 19.8 s closed
    u = region.get("SINGLE", freq=903900000, sf=10, base="US915")
    eq((u.max_payload(0, True), mac.MacState(u).uplink_dwell), (11, True))
    t = airtime.time_on_air_us(13 + 51, 10, 125000)
    eq(t > 400000, True)
    raises(dutycycle.DutyCycleError, dutycycle.DutyCycle(u).wait_ms, 903900000, t, 0)
    eq((u.rx2[1], u.rx_dr_ok(u.rx2[1]), u.rx_dr_ok(3)), (8, True, False))


def test_11_listen_before_talk_per_region():
    a = region.get("AS923-1", lbt=True)
    eq((a.lbt, a.lbt_params(923200000), a.lbt_params(920600000), a.lbt_params(925000000)),
       (True, (-80, 5000), (-80, 5000), (-80, 1000)))
    eq(region.get("SINGLE", freq=923400000, sf=9, base="AS923-1", lbt=True).lbt, True)


class _Radio:
    """What the stack's send_frame uses: records each carrier-sense time and the power set."""

    CHIP = 0
    max_power = 22
    profile = {"band_mhz": [862, 1020]}

    def __init__(self):
        self.sensed = []
        self.power = None

    def configure(self, **kw):
        self.power = kw.get("power", self.power)

    async def channel_rssi(self, us):
        self.sensed.append(us)
        return -95

    async def transmit_at(self, data, deadline=None):
        return 0, 1000


def test_6_11_the_stack_transmits_with_the_regions_power_and_carrier_sense():
    import asyncio

    from fwtest import RamFlash, mount
    from spot.clock import Clock
    from spot.lorawan.stack import LoRaWAN
    from spot.lorawan.store import Counters
    from spot.secretstore import Secrets

    mount(RamFlash(4), "/t", mkfs=True)
    radio = _Radio()
    n = LoRaWAN(region.get("AS923-1", lbt=True), radio, Clock(speed=100), Counters("/t/lorawan.json").load(),
                Secrets("/t/secrets.json"), "0000000000000001")
    asyncio.run(n.send_frame(b"x", 923200000, 7, 125000))
    n.pending_answers = mac.handle(n.mac, h("09 34"))  # TxParamSetupReq: MaxEIRP 14 dBm
    n.mac.tx_power = 1
    asyncio.run(n.send_frame(b"x", 925000000, 7, 125000))
    # ARIB STD-T108 (LoRaMac-node RegionAS923.c): 5 ms on channels 24-38, 1 ms above 923.4 MHz;
    # TXPower 1 under MaxEIRP 14 dBm: 12 dBm
    eq((radio.sensed, radio.power), ([5000, 1000], 12))
    mac.handle(n.mac, h("09 37"))  # MaxEIRP 20 dBm, above the region's 16: honoured
    n.mac.tx_power = 0
    asyncio.run(n.send_frame(b"x", 923200000, 7, 125000))
    eq(radio.power, 20)
    asyncio.new_event_loop()
