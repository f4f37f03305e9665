# The stack's handling of bad Join-Accepts and downlinks: rejected, counted, nothing changed.
from binascii import unhexlify

import cryptolib
from fwtest import RamFlash, eq, fresh_flash, mount
from spot.clock import Clock
from spot.lorawan import crypto, frame, join, region
from spot.lorawan.stack import LoRaWAN, Result
from spot.lorawan.store import Counters
from spot.radio.base import Packet
from spot.secretstore import Secrets

APPKEY = unhexlify("98929b92c49edba9676d646d3b612456")
PLAIN = unhexlify("20386337CCBBAAE7CD2C010000D9D0A6E7")  # a valid Join-Accept (shared vectors)
REQ = unhexlify("0039363463336913AA05693574323831330489C65B1304")


class StubRadio:
    CHIP = 0
    max_power = 20
    profile = {"band_mhz": [862, 1020]}


def _node():
    mount(RamFlash(16), "/t", mkfs=True)
    secrets = Secrets("/t/secrets.json")
    secrets.put("app_key", APPKEY)
    counters = Counters("/t/lorawan.json").load()
    return LoRaWAN(region.get("EU868"), StubRadio(), Clock(), counters, secrets, "0000000000000001")


def _packet(data):
    p = Packet()
    p.buf[: len(data)] = data
    p.length = len(data)
    return p


def _wire(plain):
    return plain[:1] + cryptolib.aes(APPKEY, 1).decrypt(plain[1:])


def test_join_accept_good_wrong_length_wrong_mic():
    n = _node()
    key = crypto.Key(APPKEY)
    eq(join.accept(n, key, _packet(_wire(PLAIN)[:16]), REQ), False)
    bad = bytearray(PLAIN)
    bad[-1] ^= 1
    eq(join.accept(n, key, _packet(_wire(bytes(bad))), REQ), False)
    # DLSettings with RX1DROffset 6, which EU868 does not define: refused before anything changes
    bad = bytearray(PLAIN[:-4])
    bad[11] = 0x60
    bad += join.join_mic(key, bad).to_bytes(4, "little")
    eq(join.accept(n, key, _packet(_wire(bytes(bad))), REQ), False)
    eq(n.rejects, {"join_accept": 1, "join_mic": 1, "join_settings": 1})
    eq((n.session, n.counters.devaddr, n.secrets.has("nwk_s_key")), (None, None, False), "nothing changed")
    eq(join.accept(n, key, _packet(_wire(PLAIN)), REQ), True)
    eq(n.counters.devaddr, "e7cd2c01")
    eq(n.secrets.get("nwk_s_key") is not None, True)


def test_bad_downlinks_counted_and_counters_unchanged():
    n = _node()
    n.activate_abp("49BE7DF1", unhexlify("44024241ed4ce9a68c6a8bc055233fd3"),
                   unhexlify("ec925802ae430ca77fd3dd73cb2cc588"))
    down = unhexlify("60f17dbe4920020001f9d65d27")  # shared vector: ACK, FCnt 2
    for bad, code in ((down[:11], "short"), (down[:-1] + b"\x00", "mic"), (b"\x60\x00" + down[2:], "devaddr")):
        eq(n._downlink(_packet(bad), Result(), True), False)
        eq(n.rejects.get(code, 0) >= 1, True, code)
    eq(n.counters.fcnt_down, -1, "no bad frame moved FCntDown")
    r = Result()
    eq(n._downlink(_packet(down), r, True), True)
    eq((r.ack, n.counters.fcnt_down), (True, 2))
    eq(n._downlink(_packet(down), Result(), True), False)  # replay
    eq(n.rejects["replay"], 1)
    eq(n.stats["down_rejected"], 4)
    eq(frame.full_fcnt(2, 2), 0x10002)


def test_adr_backoff_asks_then_raises_power_then_lowers_dr():
    n = _node()
    n.mac.dr, n.mac.tx_power = 5, 3
    seen = []
    for cnt in range(1, 64 + 32 * 3 + 1):
        n.adr_ack_cnt = cnt
        n._adr_backoff()
        seen.append((cnt, n.mac.tx_power, n.mac.dr))
    eq(seen[64 + 32 - 2][1:], (3, 5), "nothing before ADR_ACK_LIMIT + ADR_ACK_DELAY")
    eq(seen[64 + 32 - 1][1:], (0, 5), "first the power goes to the maximum")
    eq(seen[64 + 64 - 1][1:], (0, 4), "then the data rate steps down every ADR_ACK_DELAY")
    eq(seen[-1][1:], (0, 3))


_FLASH = []


def _accept_with_cflist(reg, cflist):
    import gc

    gc.collect()
    if not _FLASH:
        _FLASH.append(RamFlash(16))
    mount(_FLASH[0], "/t", mkfs=True)
    secrets = Secrets("/t/secrets.json")
    secrets.put("app_key", APPKEY)
    n = LoRaWAN(reg, StubRadio(), Clock(), Counters("/t/lorawan.json").load(), secrets, "0000000000000001")
    key = crypto.Key(APPKEY)
    plain = PLAIN[:13] + cflist
    plain += join.join_mic(key, plain).to_bytes(4, "little")
    eq(join.accept(n, key, _packet(_wire(plain)), REQ), True)
    return n


def test_cflist_types():
    # EU868 type 0: two more frequencies
    f1, f2 = 867100000 // 100, 867300000 // 100
    cf = f1.to_bytes(3, "little") + f2.to_bytes(3, "little") + bytes(9) + b"\x00"
    n = _accept_with_cflist(region.get("EU868"), cf)
    eq(list(n.mac.channels.f), [868100000, 868300000, 868500000, 867100000, 867300000])
    n = None
    # US915 type 1: channel masks, here sub-band 1 (channels 0-7) and 500 kHz channel 64 (the
    # Join-Accept's settings alone: accept() applies what join.settings() returns, as above)
    cf = b"\xff\x00" + bytes(6) + b"\x01\x00" + bytes(5) + b"\x01"
    st = join.settings(region.get("US915", subband=2), 0x08, 1, cf)  # RX2 at DR8 (US915 downlinks: DR8-13)
    eq(st.channels.enabled(), [0, 1, 2, 3, 4, 5, 6, 7, 64])
    # the single-channel plan ignores a CFList
    st = join.settings(region.get("SINGLE", freq=868100000, sf=9), 0, 1, f1.to_bytes(3, "little") + bytes(13))
    eq(list(st.channels.f), [868100000])


class LbtRadio:
    CHIP = 0
    max_power = 20
    profile = {"band_mhz": [862, 1020]}

    def __init__(self, readings):
        self.readings = list(readings)
        self.sent = 0

    def configure(self, **kw):
        pass

    async def channel_rssi(self, us):
        return self.readings.pop(0)

    async def transmit_at(self, data, deadline=None):
        self.sent += 1
        return 0, 1000


def test_listen_before_talk_waits_for_a_free_channel_then_refuses():
    import asyncio

    from spot.lorawan.stack import ChannelBusy

    mount(RamFlash(16), "/t", mkfs=True)
    secrets = Secrets("/t/secrets.json")
    reg = region.get("AS923-1", lbt=True)
    radio = LbtRadio([-60, -70, -95])
    n = LoRaWAN(reg, radio, Clock(speed=100), Counters("/t/lorawan.json").load(), secrets, "0000000000000001")
    asyncio.run(n.send_frame(b"x", 923200000, 7, 125000))
    eq((radio.sent, n.stats["lbt_busy"]), (1, 2))
    radio.readings = [-50] * 5
    e = None
    try:
        asyncio.run(n.send_frame(b"x", 923200000, 7, 125000))
    except ChannelBusy as exc:
        e = exc
    eq((e is not None, radio.sent), (True, 1))
    asyncio.new_event_loop()


class RecordingRadio(LbtRadio):
    """Records each transmission's channel and data rate; every receive window stays empty."""

    def __init__(self):
        super().__init__([])
        self.tx = []
        self.cfg = {}

    def configure(self, **kw):
        self.cfg.update(kw)

    async def transmit_at(self, data, deadline=None):
        self.tx.append((self.cfg["freq"], self.cfg["sf"], self.cfg["bw"]))
        return 0, 1000

    def symbols_us(self, n):
        return 1000 * n

    async def receive_window(self, start, symbols):
        return None


def test_us915_join_requests_alternate_125khz_dr0_and_500khz_dr4():
    import asyncio

    mount(RamFlash(16), "/t", mkfs=True)
    secrets = Secrets("/t/secrets.json")
    secrets.put("app_key", APPKEY)
    radio = RecordingRadio()
    n = LoRaWAN(region.get("US915", subband=2), radio, Clock(speed=100), Counters("/t/lorawan.json").load(), secrets,
                "0000000000000001")
    for _ in range(4):
        eq(asyncio.run(n.join()), False)
    eq([(sf, bw) for _f, sf, bw in radio.tx], [(10, 125000), (8, 500000), (10, 125000), (8, 500000)])
    for f, _sf, bw in radio.tx:  # sub-band 2: 903.9-905.3 MHz at 125 kHz, 904.6 MHz at 500 kHz
        ok = 903900000 <= f <= 905300000 if bw == 125000 else f == 904600000
        eq(ok, True, "channel %d outside sub-band 2" % f)
    eq(n.stats["join_fail"], 4)
    asyncio.new_event_loop()


class WindowRadio(RecordingRadio):
    """Records the channel and data rate each receive window listens on."""

    def __init__(self):
        super().__init__()
        self.rx = []

    async def receive_window(self, start, symbols):
        self.rx.append((self.cfg["freq"], self.cfg["sf"], self.cfg["bw"], self.cfg["iq_inverted"]))
        return None


def test_join_windows_follow_the_regional_rx1_rule():
    """A US915 Join-Request on 903.9 MHz SF10 (channel 8, DR0) is answered on 923.3 MHz SF10/500 kHz
    (DR10) in RX1 and 923.3 MHz SF12/500 kHz (DR8) in RX2, on the full region and on the single
    channel alike; an EU868 single channel keeps its RX1 on the uplink channel."""
    import asyncio

    for reg, want in ((region.get("SINGLE", freq=903900000, sf=10, base="US915"),
                       [(923300000, 10, 500000, True), (923300000, 12, 500000, True)]),
                      (region.get("SINGLE", freq=868300000, sf=9),
                       [(868300000, 9, 125000, True), (869525000, 12, 125000, True)])):
        fresh_flash("/t")
        secrets = Secrets("/t/secrets.json")
        secrets.put("app_key", APPKEY)
        radio = WindowRadio()
        n = LoRaWAN(reg, radio, Clock(speed=100), Counters("/t/lorawan.json").load(), secrets, "0000000000000001")
        eq(asyncio.run(n.join()), False)
        eq(radio.tx, [(reg.channels[0][0], want[0][1] if reg.base.name == "EU868" else 10, 125000)])
        eq(radio.rx, want)
        asyncio.new_event_loop()
    # the full US915 region: a join on a 125 kHz channel, RX1 on that channel's downlink frequency
    n = radio = None
    fresh_flash("/t")
    secrets = Secrets("/t/secrets.json")
    secrets.put("app_key", APPKEY)
    radio = WindowRadio()
    n = LoRaWAN(region.get("US915", subband=2), radio, Clock(speed=100), Counters("/t/lorawan.json").load(), secrets,
                "0000000000000001")
    eq(asyncio.run(n.join()), False)
    f, sf, bw = radio.tx[0]
    eq((sf, bw), (10, 125000))
    eq(radio.rx[0], (923300000 + 600000 * ((f - 902300000) // 200000 % 8), 10, 500000, True))
    asyncio.new_event_loop()
