# MAC commands: applied and answered per LoRaWAN 1.0.3 section 5; bad ones change nothing.
from binascii import unhexlify

from fwtest import eq
from spot.lorawan import mac, region


def h(s):
    return unhexlify(s.replace(" ", ""))


def _on(st):
    return [st.channels.row(i)[3] for i in range(len(st.channels))]


def test_link_adr_eu868_applies_all_or_nothing():
    st = mac.MacState(region.get("EU868"))
    # DR5, TXPower 2, channels 0-2 on, NbTrans 2
    eq(mac.handle(st, h("03 52 0700 02")), h("03 07"))
    eq((st.dr, st.tx_power, st.nb_trans, _on(st)), (5, 2, 2, [True, True, True]))
    # DR 7 (FSK) not available: nothing changes, DR bit cleared
    eq(mac.handle(st, h("03 70 0100 01")), h("03 05"))
    eq((st.dr, _on(st)), (5, [True, True, True]))
    # all channels off is refused
    eq(mac.handle(st, h("03 50 0000 01")), h("03 04"))  # no channel left: mask and DR refused
    # TXPower 8 does not exist
    eq(mac.handle(st, h("03 58 0700 01")), h("03 03"))


def test_link_adr_us915_block_and_masks():
    st = mac.MacState(region.get("US915", subband=2))
    eq(len(st.channels.enabled()), 9)
    # two requests: all 125 kHz off + 500 kHz mask none (cntl 7), then block 0 mask 0xFF00 (channels 8-15)
    eq(mac.handle(st, h("03 30 0000 70" + "03 30 00FF 00")), h("03 07 03 07"))
    on = st.channels.enabled()
    eq(on, list(range(8, 16)))
    eq(st.dr, 3)


def test_single_channel_refuses_moving_off():
    st = mac.MacState(region.get("SINGLE", freq=868100000, sf=9))
    eq(mac.handle(st, h("03 30 0200 01")), h("03 06"), "mask without the channel")
    eq(mac.handle(st, h("03 50 0100 01")), h("03 05"), "another data rate")
    eq(mac.handle(st, h("03 30 0100 01")), h("03 07"))
    eq(mac.handle(st, h("07 03 E8D084 50")), h("07 00"), "NewChannelReq refused")


def test_rx_param_timing_dlchannel_are_sticky():
    st = mac.MacState(region.get("EU868"))
    # RX1 offset 2, RX2 DR3 at 869.525 MHz (0x84AE5C * 100... little-endian 5C AE 84 -> 8695900? use exact)
    f = 869525000 // 100
    req = bytes((0x05, 0x23, f & 0xFF, (f >> 8) & 0xFF, f >> 16))
    ans = mac.handle(st, req + h("08 05"))
    eq(ans, h("05 07 08"))
    eq((st.rx1_dr_offset, st.rx2_dr, st.rx2_freq, st.rx1_delay), (2, 3, 869525000, 5))
    eq(st.sticky, h("05 07 08"))
    # a bad RX2 frequency: nothing changes
    eq(mac.handle(st, bytes((0x05, 0x00, 1, 0, 0))), h("05 06"))
    eq(st.rx2_dr, 3)
    # DlChannelReq on channel 1
    f = 868300000 // 100 + 1000
    eq(mac.handle(st, bytes((0x0A, 1, f & 0xFF, (f >> 8) & 0xFF, f >> 16))), h("0A 03"))
    eq(st.channels.row(1)[4], f * 100)


def test_dev_status_duty_link_check_device_time_new_channel():
    st = mac.MacState(region.get("EU868"))
    eq(mac.handle(st, h("06"), battery=200, margin=-5), bytes((0x06, 200, (-5) & 0x3F)))
    eq(mac.handle(st, h("04 07")), h("04"))
    eq(st.max_duty, 7)
    eq(mac.handle(st, h("02 0A 03")), b"")
    eq(st.link_check, (10, 3))
    eq(mac.handle(st, h("0D 00E1F505 80")), b"")
    eq(st.device_time, (100000000, 128))
    f = 867100000 // 100
    eq(mac.handle(st, bytes((0x07, 3, f & 0xFF, (f >> 8) & 0xFF, f >> 16, 0x50))), h("07 03"))
    eq(st.channels.row(3)[:4], (867100000, 0, 5, True))
    eq(mac.handle(st, bytes((0x07, 0, f & 0xFF, (f >> 8) & 0xFF, f >> 16, 0x50))), h("07 00"), "default channel")


def test_tx_param_setup_only_in_as923():
    st = mac.MacState(region.get("EU868"))
    eq(mac.handle(st, h("09 3F")), b"")
    st = mac.MacState(region.get("AS923-1"))
    eq(mac.handle(st, h("09 05")), h("09"))
    eq((st.uplink_dwell, st.downlink_dwell, st.max_eirp), (False, False, 16))


def test_truncated_and_unknown_commands_stop_parsing():
    st = mac.MacState(region.get("EU868"))
    eq(mac.handle(st, h("04 01 03 52")), h("04"))
    eq(st.errors, 1)
    eq(mac.handle(st, h("EE 04 01")), b"")
    eq((st.errors, st.max_duty), (2, 1))


def test_answers_fit_fopts_as_whole_commands():
    answers = h("0307 0307 0307 0307 0307 0602ff 0A03")  # 5 x 2 + 3 + 2 = 15 bytes
    eq(mac.fit(answers), (answers, b""))
    more = answers + h("05 07")
    eq(mac.fit(more), (answers, h("0507")))
    seven = h("0307" * 7)
    eq(mac.fit(seven + h("0602ff")), (seven, h("0602ff")))
