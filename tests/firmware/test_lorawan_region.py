# Regional parameters: data rates, payload limits, channels, RX1/RX2, power, duty-cycle bands.
from fwtest import eq, raises
from spot.lorawan import region
from spot.radio import airtime


def test_eu868():
    r = region.get("EU868")
    eq([c[0] for c in r.channels], [868100000, 868300000, 868500000])
    eq((r.dr(0), r.dr(5), r.dr(6)), ((12, 125000), (7, 125000), (7, 250000)))
    raises(region.RegionError, r.dr, 7)  # FSK
    eq((r.max_payload(0), r.max_payload(3), r.max_payload(5)), (51, 115, 242))
    eq(r.rx2, (869525000, 0))
    eq((r.rx1_dr(5, 0), r.rx1_dr(5, 2), r.rx1_dr(1, 5)), (5, 3, 0))
    eq((r.tx_power(0), r.tx_power(7)), (16, 2))
    raises(region.RegionError, r.tx_power, 8)
    eq(r.duty_band(868100000)[2], 100)
    eq(r.duty_band(869525000)[2], 10)
    eq(r.duty_band(868900000)[2], 1000)
    eq(r.join_delays, (5, 6))


def test_us915_subband_rx1_and_dwell():
    r = region.get("US915", subband=2)
    eq([c[0] for c in r.channels[:2]], [903900000, 904100000])
    eq(r.channels[-1], (904600000, 4, 4))
    eq((r.rx1_dr(0, 0), r.rx1_dr(3, 0), r.rx1_dr(4, 0), r.rx1_dr(3, 3)), (10, 13, 13, 10))
    eq(r.rx1_freq(903900000, r.uplink_channel(903900000)), 923300000 + 600000 * 0)
    eq(r.rx1_freq(904100000, r.uplink_channel(904100000)), 923900000)
    eq(r.rx1_freq(904600000, r.uplink_channel(904600000)), 923300000 + 600000 * 1)
    eq(r.rx2, (923300000, 8))
    eq(r.max_payload(0), 11)
    # DR0 with the largest payload stays within the 400 ms dwell time
    sf, bw = r.dr(0)
    eq(airtime.time_on_air_us(13 + r.max_payload(0), sf, bw) <= r.dwell_ms * 1000, True)
    eq(r.tx_power(0), 30)
    raises(region.RegionError, region.get, "US915", subband=9)


def test_as923_variants_and_cn470():
    eq([region.get(n).channels[0][0] for n in ("AS923", "AS923-2", "AS923-3", "AS923-4")],
       [923200000, 921400000, 916600000, 917300000])
    a = region.get("AS923-1", lbt=True)
    eq((a.rx2, a.lbt, a.dwell_ms, a.max_payload(2, dwell=True)), ((923200000, 2), True, 400, 11))
    raises(region.RegionError, region.get, "AS923-5")
    c = region.get("CN470")
    eq((len(c.channels), c.rx2, c.rx1_freq(470500000, c.uplink_channel(470500000))), (96, (505300000, 0), 500500000))


def test_single_channel_plan():
    """Uplinks on the one channel at its SF; downlinks by the region's rules (RX1 on the
    channel's downlink frequency and DR, RX2 on the region's default)."""
    s = region.get("SINGLE", freq=868100000, sf=9)
    eq((s.channels, s.rx2, s.cflist, s.rx1_dr(3, 0), s.rx1_freq_of(868100000)),
       ([(868100000, 3, 3)], (869525000, 0), False, 3, 868100000))
    raises(region.RegionError, region.get, "SINGLE")
    # US915: SF10 is DR0 there; RX1 on 923.3 + 0.6 x (channel mod 8) MHz at DR10..13, RX2 923.3 DR8
    u = region.get("SINGLE", freq=903900000, sf=10, base="US915")
    eq((u.channels, u.rx2, u.rx1_dr(0, 0), u.rx1_freq_of(903900000), u.rx1_freq_of(905300000)),
       ([(903900000, 0, 0)], (923300000, 8), 10, 923300000, 927500000))
    eq(u.dr(u.rx1_dr(3, 0)), (7, 500000))
    c = region.get("SINGLE", freq=470500000, sf=12, base="CN470")
    eq((c.channels[0][1], c.rx1_freq_of(470500000)), (0, 500500000))
    a = region.get("SINGLE", freq=923400000, sf=10, base="AS923-1")
    eq((a.channels, a.rx2, a.dwell_ms), ([(923400000, 2, 2)], (923200000, 2), 400))
    raises(region.RegionError, region.get, "SINGLE", freq=868100000, sf=9, base="US915")  # outside it
    raises(region.RegionError, region.get, "SINGLE", freq=868100000, sf=9, base="SINGLE")


def test_region_outside_board_band_refused():
    e = raises(region.RegionError, region.get("US915").check_radio, [433, 434])
    eq("outside this board's radio band" in str(e), True)
    region.get("EU868").check_radio([862, 1020])
    raises(region.RegionError, region.get("CN470").check_radio, [862, 1020])
    raises(region.RegionError, region.get, "KR920x")


def test_one_list_of_region_names():
    """The config schema's region choices are the table (the host's provisioning takes its choices
    from it); get() knows each of them."""
    from spot import schema

    for name in schema.SCHEMA["region"][2]:
        if name == "SINGLE":
            eq(region.get(name, freq=868100000, sf=9).name, "SINGLE")
        else:
            eq(region.get(name).name.replace("_", "-"), name)
