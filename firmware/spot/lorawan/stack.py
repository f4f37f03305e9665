# LoRaWAN 1.0.3 Class A end device: OTAA join and ABP, uplinks with RX1/RX2, confirmed frames
# and ACKs, MAC commands, ADR back-off, duty cycle, counters persisted before use.
import os
from binascii import hexlify, unhexlify

from spot import unload
from spot.clock import ticks_add
from spot.lorawan import ChannelBusy, JoinFailed, crypto, frame, mac  # noqa: F401 (both re-exported)
from spot.lorawan.dutycycle import DutyCycle, JoinBackoff
from spot.radio import airtime

ADR_ACK_LIMIT = 64
ADR_ACK_DELAY = 32
WINDOW_SYMBOLS = 8  # a window stays open this long for a preamble
EARLY_SYMBOLS = 2  # and opens this much before the downlink is due


LBT_TRIES = 5


class Result:
    def __init__(self):
        self.fcnt = 0
        self.ack = False
        self.downlink = None  # frame.Downlink or None
        self.window = 0  # 1 or 2 when a downlink came
        self.start_us = 0
        self.end_us = 0
        self.airtime_us = 0
        self.freq = 0  # uplink frequency (Hz) and data rate
        self.dr = 0


def _eui_wire(hex_be):
    """An EUI as network servers print it (MSB first) in wire order (LSB first)."""
    return bytes(reversed(unhexlify(hex_be)))


class LoRaWAN:
    def __init__(self, region, radio, clock, counters, secrets, dev_eui, join_eui="0000000000000000"):
        self.region = region
        self.radio = radio
        self.clock = clock
        self.counters = counters
        self.secrets = secrets
        self.dev_eui = _eui_wire(dev_eui)
        self.join_eui = _eui_wire(join_eui)
        self.mac = mac.MacState(region)
        self.duty = DutyCycle(region)
        self.join_backoff = JoinBackoff()
        self.join_attempts = 0  # since the last successful join (US915 alternates DR0/DR4)
        self.session = None
        self.devaddr = None
        self.adr = region.name != "SINGLE"
        self.lbt_rssi = None  # dBm the channel read before the last transmission (listen before talk)
        self.adr_ack_cnt = 0
        self.pending_answers = b""  # MAC answers for the next uplink
        self.stats = {"joins": 0, "join_fail": 0, "uplinks": 0, "downlinks": 0, "down_rejected": 0}
        self.last_snr = 0
        self.last_rssi = 0  # dBm of the last downlink taken (the display shows it)
        self.rejects = {}
        self._buf = bytearray(255)
        self._rx = bytearray(255)
        if radio is not None:
            self.set_radio(radio)

    def set_radio(self, radio):
        """The radio this stack sends with (None while it is out: the node opens it again)."""
        if radio is not None:
            self.region.check_radio(radio.profile["band_mhz"])
        self.radio = radio

    # ---- activation --------------------------------------------------------------------------------
    def restore(self):
        """Resume a stored session (after a reboot); False when there is none."""
        nwk, app = self.secrets.get("nwk_s_key"), self.secrets.get("app_s_key")
        if not (self.counters.devaddr and nwk and app):
            return False
        self.devaddr = unhexlify(self.counters.devaddr)
        self.session = crypto.Session(nwk, app)
        return True

    def activate_abp(self, devaddr_hex_be, nwkskey, appskey):
        self.devaddr = _eui_wire(devaddr_hex_be)
        self.secrets.put("nwk_s_key", nwkskey)
        self.secrets.put("app_s_key", appskey)
        self.session = crypto.Session(nwkskey, appskey)
        if self.counters.devaddr != hexlify(self.devaddr).decode():
            self.counters.new_session(hexlify(self.devaddr).decode())

    def pick_channel(self):
        """(uplink frequency, downlink frequency or 0) of a random enabled channel for the DR."""
        ch, dr = self.mac.channels, self.mac.dr
        idx = [i for i in ch.enabled() if ch.lo[i] <= dr <= ch.hi[i]]
        if not idx:
            raise ValueError("no enabled channel for DR%d" % dr)
        i = idx[os.urandom(1)[0] % len(idx)]
        return ch.f[i], ch.dl[i]

    async def join(self, dr=None):
        """One OTAA attempt: Join-Request, then RX1 (5 s) and RX2 (6 s). True when joined.
        The join code (spot.lorawan.join) is loaded for it and dropped once joined: a session
        needs it once, and its RAM is then free for the rest."""
        from spot.lorawan import join

        ok = await join.attempt(self, dr)
        if ok:
            unload("spot.lorawan.join")
        return ok

    # ---- uplinks --------------------------------------------------------------------------------
    async def send(self, fport, payload, confirmed=False):
        """One uplink and its receive windows. Returns a Result; raises ValueError for a payload
        that does not fit this data rate, DutyCycleError when it can never be sent as asked."""
        if self.session is None:
            raise ValueError("not activated: join first")
        sf, bw = self.region.dr(self.mac.dr)
        limit = self.region.max_payload(self.mac.dr, self.mac.uplink_dwell)
        if len(payload) > limit:
            raise ValueError("%d bytes do not fit DR%d (at most %d)" % (len(payload), self.mac.dr, limit))
        # MAC answers ride in FOpts (whole commands, 15 bytes at most); with no application data
        # and more to say, they go on FPort 0 instead. Sticky ones repeat until a downlink comes.
        fopts, rest = mac.fit(self.pending_answers)
        if rest and not payload and fport != 0:
            fport, payload, fopts, rest = 0, self.pending_answers, b"", b""
        self.pending_answers = rest or self.mac.sticky
        ch = self.pick_channel()
        size = 8 + len(fopts) + 1 + len(payload) + 4
        airtime = self.frame_airtime_us(size, sf, bw)
        await self.wait_duty(ch[0], airtime)
        self.adr_ack_cnt += 1
        fcnt = self.counters.next_fcnt_up()  # reserved on flash before the radio sends it
        n = frame.build_uplink(self._buf, self.session, self.devaddr, fcnt, fport, payload, fopts, confirmed,
                               self.adr, False, self.adr and self.adr_ack_cnt >= ADR_ACK_LIMIT)
        res = Result()
        res.fcnt = fcnt
        res.start_us, res.end_us = await self.send_frame(memoryview(self._buf)[:n], ch[0], sf, bw)
        res.airtime_us = airtime
        res.freq, res.dr = ch[0], self.mac.dr
        self.stats["uplinks"] += 1
        rx1dr = self.region.rx1_dr(self.mac.dr, self.mac.rx1_dr_offset, self.mac.downlink_dwell)
        rx1f = ch[1] or self.region.rx1_freq_of(ch[0])  # ch[1]: a DlChannelReq's frequency
        delay = self.mac.rx1_delay
        for w, d, (freq, dr) in ((1, delay, (rx1f, rx1dr)), (2, delay + 1, (self.mac.rx2_freq, self.mac.rx2_dr))):
            if not self.region.rx_dr_ok(dr):
                continue  # an RX1 data rate a LoRa radio cannot receive (AS923 offset 7 to DR7, FSK)
            p = await self.rx_window(res.end_us, d, freq, dr)
            if p is not None and self._downlink(p, res, confirmed):
                res.window = w
                break
        self._adr_backoff()
        return res

    def _downlink(self, p, res, confirmed):
        n = p.length
        self._rx[:n] = p.payload()
        try:
            d = frame.parse_downlink(self._rx, n, self.session, self.devaddr, self.counters.fcnt_down)
        except frame.FrameError as e:
            self.reject(e.code)
            return False
        self.counters.accept_down(d.fcnt)
        self.stats["downlinks"] += 1
        self.adr_ack_cnt = 0
        self.last_snr = p.snr_x4 // 4
        self.last_rssi = p.rssi
        self.mac.sticky = b""
        cmds = d.fopts or (d.payload if d.fport == 0 else b"")
        self.pending_answers = mac.handle(self.mac, cmds, margin=self.last_snr) if cmds else b""
        res.ack = confirmed and d.ack
        res.downlink = d
        return True

    def _adr_backoff(self):
        """ADR_ACK_LIMIT uplinks without a downlink: ask (ADRACKReq); after ADR_ACK_DELAY more,
        first raise the power to the maximum, then step the data rate down."""
        if not self.adr or self.adr_ack_cnt < ADR_ACK_LIMIT + ADR_ACK_DELAY:
            return
        if (self.adr_ack_cnt - ADR_ACK_LIMIT) % ADR_ACK_DELAY:
            return
        if self.mac.tx_power:
            self.mac.tx_power = 0
        elif self.mac.dr > self.region.min_dr(self.mac.uplink_dwell):  # AS923 with dwell time: DR2
            self.mac.dr -= 1

    def reject(self, code):
        self.stats["down_rejected"] += 1
        self.rejects[code] = self.rejects.get(code, 0) + 1

    # ---- radio --------------------------------------------------------------------------------
    def frame_airtime_us(self, size, sf, bw):
        return airtime.time_on_air_us(size, sf, bw, 5, 8, True, True, None, self.radio.CHIP)

    async def wait_duty(self, freq, airtime, join=False):
        while True:
            now = self.clock.ticks_ms()
            wait = self.duty.wait_ms(freq, airtime, now, 400 if self.mac.uplink_dwell and self.region.dwell_ms else 0)
            if join:
                wait = max(wait, self.join_backoff.wait_ms(airtime, now))
            if wait <= 0:
                return
            await self.clock.sleep_ms(wait)

    async def send_frame(self, data, freq, sf, bw):
        # TXPower is an offset below the MaxEIRP in force (the region's, or a TxParamSetupReq's)
        power = min(self.region.tx_power(self.mac.tx_power, self.mac.max_eirp), self.radio.max_power)
        self.radio.configure(freq=freq, sf=sf, bw=bw, cr=5, preamble=8, sync=0x34, iq_inverted=False, crc=True,
                             power=power)
        if self.region.lbt:
            await self._listen_before_talk(freq)
        start, end = await self.radio.transmit_at(data)
        self.duty.record(freq, self.frame_airtime_us(len(data), sf, bw), self.clock.ticks_ms())
        return start, end

    async def _listen_before_talk(self, freq):
        """Where the region requires it (AS923 in Japan, ARIB STD-T108) the channel must stay below
        the region's threshold for its carrier-sense time before transmitting (Region.lbt_params);
        a busy channel is retried after a random back-off, and after LBT_TRIES the uplink is refused."""
        threshold, sense_us = self.region.lbt_params(freq)
        for _ in range(LBT_TRIES):
            rssi = await self.radio.channel_rssi(sense_us)
            self.lbt_rssi = rssi  # the last reading, reported with the uplink
            if rssi < threshold:
                return
            self.stats["lbt_busy"] = self.stats.get("lbt_busy", 0) + 1
            await self.clock.sleep_ms(10 + os.urandom(1)[0] % 100)
        raise ChannelBusy("channel busy (listen before talk) after %d tries" % LBT_TRIES)

    async def rx_window(self, tx_end, delay_s, freq, dr):
        sf, bw = self.region.dr(dr)
        self.radio.configure(freq=freq, sf=sf, bw=bw, iq_inverted=True, crc=False)
        sym = self.radio.symbols_us(1)
        start = ticks_add(tx_end, delay_s * 1000000 - EARLY_SYMBOLS * sym)
        return await self.radio.receive_window(start, WINDOW_SYMBOLS)
