# The hotspot's own transmissions within the region's limits (duty cycle per sub-band over a
# rolling hour, downlink dwell time, EIRP per sub-band), and downlinks timed by GPS time answered
# GPS_UNLOCKED: refused with the TX_ACK error, counted, never queued.
from fwtest import eq
from hotspot_fakes import FakeConsole, FakeRadio, Src, _hotspot, _txpk
from spot.clock import Clock
from spot.hotspot import semtech
from spot.hotspot.core import Hotspot


def _rules_hotspot(region_name):
    """A hotspot with the TX rules its boot gives it in region_name (spot.hotspot.boot)."""
    from spot.hotspot.boot import channel_band

    class Cfg:
        def get(self, k):
            return {"region": region_name, "sub_band": 2, "single_freq": 868100000, "single_sf": 7,
                    "single_region": "EU868"}[k]

    class R:
        band = (862000000, 1020000000)

    band, limits = channel_band(Cfg(), R())
    src = Src()
    clock = Clock(us_source=src, ms_source=lambda: src.t // 1000)
    return src, Hotspot(FakeRadio(), clock, FakeConsole(), 868100000, 7, band, queue_size=4, limits=limits)


def test_downlinks_obey_the_regions_duty_cycle_dwell_and_eirp():
    """EU868: 1 % per sub-band over a rolling hour (36 s of airtime), 16 dBm but 29 dBm in
    869.4-869.65 MHz; AS923: the 400 ms downlink dwell time. A downlink that would break them is
    refused with its TX_ACK error, counted by error, and never queued."""
    src, hs = _rules_hotspot("EU868")
    src.t = 1000000
    eq(hs.schedule(_txpk(imme=True, power=17)), semtech.TX_POWER)  # 16 dBm in 868.0-868.6
    t = _txpk(imme=True, freq=869525000, power=20, sf=12)
    eq(hs.schedule(t), semtech.NONE)  # the 10 % sub-band takes up to 29 dBm (this radio: 20)
    hs.jit.take(hs.jit.next())
    # SF12, 51 bytes: ~2.5 s each; 36 s per hour in 868.0-868.6 MHz: the 15th is refused
    results = []
    for i in range(16):
        src.t += 3000000
        results.append(hs.schedule(_txpk(imme=True, sf=12, data=bytes(51))))
        if hs.jit.next() >= 0:
            hs.jit.take(hs.jit.next())
    eq(results.count(semtech.NONE), 14)
    eq(results[14:], [semtech.DUTY_CYCLE_OVERFLOW] * 2)
    # another sub-band has its own budget
    eq(hs.schedule(_txpk(imme=True, freq=867100000, sf=12, data=bytes(51))), semtech.NONE)
    hs.jit.take(hs.jit.next())
    # an hour later the budget is back
    src.t += 3600 * 1000000
    eq(hs.schedule(_txpk(imme=True, sf=12, data=bytes(51))), semtech.NONE)
    hs.jit.take(hs.jit.next())
    eq(hs.jit.refused, {semtech.TX_POWER: 1, semtech.DUTY_CYCLE_OVERFLOW: 2})
    eq(hs.stats_data()["tx_rules"], hs.jit.refused)
    # 868.7-869.2 MHz: 0.1 %, 3.6 s an hour: one such frame, not two; 869.2-869.4 MHz is between the
    # sub-bands (LoRaMac-node RegionEU868.c VerifyRfFreq): nothing goes there
    eq(hs.schedule(_txpk(imme=True, freq=868900000, sf=12, data=bytes(51))), semtech.NONE)
    hs.jit.take(hs.jit.next())
    eq(hs.schedule(_txpk(imme=True, freq=868900000, sf=12, data=bytes(51))), semtech.DUTY_CYCLE_OVERFLOW)
    eq(hs.schedule(_txpk(imme=True, freq=869300000, sf=7, data=bytes(5))), semtech.TX_FREQ)
    eq(hs.schedule(_txpk(imme=True, freq=864000000, sf=7, data=bytes(5))), semtech.NONE)  # 0.1 % sub-band
    hs.jit.take(hs.jit.next())
    eq(hs.jit.refused[semtech.DUTY_CYCLE_OVERFLOW], 3)
    src, hs = _rules_hotspot("AS923-1")
    src.t = 1000000
    eq(hs.schedule(_txpk(imme=True, freq=923200000, sf=12, data=bytes(20))), semtech.TX_FREQ)  # 1.2 s > 400 ms
    eq(hs.schedule(_txpk(imme=True, freq=923200000, sf=7, data=bytes(20))), semtech.NONE)


def test_gps_timed_downlinks_are_answered_gps_unlocked():
    src, hs = _hotspot()
    t = semtech.parse_txpk(b'{"txpk":{"tmms":1234567890123,"freq":868.1,"powe":14,"modu":"LORA",'
                           b'"datr":"SF7BW125","codr":"4/5","ipol":true,"size":1,"data":"AQ=="}}')
    eq((t.tmst, t.crc), (semtech.GPS_ONLY, True))
    eq(hs.schedule(t), semtech.GPS_UNLOCKED)
    eq(len(hs.jit), 0)


def test_chirpstack_items_crc_and_gps_timing():
    """No noCrc (protobuf JSON leaves false out, as ChirpStack's downlinks have it): sent with a
    CRC, as the Gateway Bridge and Semtech's forwarder do; an item timed by gpsEpoch is marked for
    GPS_UNLOCKED, not a KeyError."""
    from spot.hotspot import mqtt

    item = {"phyPayload": "YAECAwQAAAAB", "txInfo": {"frequency": 868100000, "power": 14, "modulation": {"lora": {
        "bandwidth": 125000, "spreadingFactor": 9, "codeRate": "CR_4_5", "polarizationInversion": True}},
        "timing": {"delay": {"delay": "1.500s"}}, "context": "/////w=="}}
    eq(mqtt.txpk_of(item).crc, True)
    item["txInfo"]["modulation"]["lora"]["noCrc"] = True
    eq(mqtt.txpk_of(item).crc, False)
    item["txInfo"]["timing"] = {"gpsEpoch": {"timeSinceGpsEpoch": "1400000000.000s"}}
    t = mqtt.txpk_of(item)
    eq(t.tmst, semtech.GPS_ONLY)
    src, hs = _hotspot()
    eq(hs.schedule(t), semtech.GPS_UNLOCKED)


def test_downlink_frame_items_found_without_parsing_them():
    """The items of a DownlinkFrame are found in one pass (and parsed one at a time later): the
    spans are exactly the item objects json would give, the downlinkId read; a frame that is not
    one (unbalanced, unterminated string, no items, not an object) is refused."""
    import json

    from fwtest import raises
    from spot.hotspot import mqtt

    items = [{"phyPayload": "YA==", "txInfo": {"frequency": 868100000, "note": "a } ] \" {"}},
             {"phyPayload": "YQ==", "txInfo": {"timing": {"delay": {"delay": "1s"}}}}]
    text = json.dumps({"gatewayId": "01", "downlinkId": 4294967295, "items": items}).encode()
    did, spans = mqtt.frame_items(memoryview(text))
    eq(did, 4294967295)
    eq([json.loads(text[a:b]) for a, b in spans], items)
    for bad in (b'{"items":[{"a":1}', b'{"items":[{"a":"x}]}', b'{"downlinkId":1}', b'{"items":{"a":{}}}',
                b'[{"items":[{}]}]', b'x{"items":[{}]}', b'{"items":[{}]}}'):
        raises(ValueError, mqtt.frame_items, bad)
