# LoRaWAN Regional Parameters (RP002-1.0.x, as used with LoRaWAN 1.0.3) for EU868, US915, AS923
# (variants 1-4), CN470 (the 96-channel plan of LoRaWAN 1.0.x), and a single-channel plan for
# single-channel hotspots. Plain data and small functions; frequencies in Hz, data rates as (SF,
# bandwidth Hz). The values are checked against ChirpStack's lrwn, brocaar/lorawan and LoRaMac-node
# by tests/data/regional (each with its source).

_SF125 = ((12, 125000), (11, 125000), (10, 125000), (9, 125000), (8, 125000), (7, 125000))


class RegionError(ValueError):
    pass


class Region:
    def __init__(self, name, band, drs, max_n, channels, rx2, max_eirp, duty=(), dwell_ms=0, max_n_dwell=None,
                 lbt=False, cflist=True, rx1_offsets=6, tx_power_step=2, tx_power_max_index=7):
        self.name = name
        self.family = name  # whose rules apply (a single-channel plan follows its region's)
        self.band = band  # (low, high) Hz
        self.drs = drs  # index: data rate -> (sf, bw) or None (FSK, not on LoRa radios)
        self.max_n = max_n  # max FRMPayload per data rate
        self.max_n_dwell = max_n_dwell  # the same with the 400 ms uplink dwell limit
        self.channels = channels  # default uplink channels: (freq, dr_min, dr_max)
        self.rx2 = rx2  # (freq, dr)
        self.max_eirp = max_eirp  # dBm
        self.duty = duty  # (low, high, 1/duty cycle)
        self.dwell_ms = dwell_ms  # uplink dwell time limit (0: none)
        self.lbt = lbt  # listen before talk required
        self.cflist = cflist  # does a Join-Accept CFList apply
        self.rx1_offsets = rx1_offsets
        self.tx_power_step = tx_power_step
        self.tx_power_max_index = tx_power_max_index
        self.join_delays = (5, 6)  # JOIN_ACCEPT_DELAY1/2, s
        self.receive_delay1 = 1  # s, until a Join-Accept or RXTimingSetupReq says otherwise
        self.repeater = False  # the network's repeater-compatible payload sizes (get(repeater=True))

    def dr(self, index):
        if not 0 <= index < len(self.drs) or self.drs[index] is None:
            raise RegionError("%s has no LoRa data rate DR%d" % (self.name, index))
        return self.drs[index]

    def rx_dr_ok(self, dr):
        """A data rate a LoRa radio can receive downlinks at (RX2, a Join-Accept's DLSettings;
        US915 downlinks are DR8-13, 500 kHz)."""
        return (8 if self.family == "US915" else 0) <= dr < len(self.drs) and self.drs[dr] is not None

    def max_payload(self, dr, dwell=False):
        """Largest FRMPayload (N) at dr; with the 400 ms uplink dwell time where the region has a
        table for it; a repeater-compatible network caps N at 222 (US915 DR8/DR9: 33/109)."""
        table = self.max_n_dwell if dwell and self.max_n_dwell else self.max_n
        n = table[dr] if 0 <= dr < len(table) else 0
        if self.repeater:
            n = min(n, {8: 33, 9: 109}.get(dr, 222) if self.family == "US915" else 222)
        return n

    def min_dr(self, dwell=False):
        """The slowest data rate an uplink can use (AS923 with the uplink dwell time: DR2)."""
        dr = 0
        while self.max_payload(dr, dwell) == 0:
            dr += 1
        return dr

    def tx_power(self, index, max_eirp=None):
        """EIRP in dBm for TXPower index (LinkADRReq), an offset below max_eirp (the region's, or
        one a TxParamSetupReq set); RegionError when out of range."""
        if not 0 <= index <= self.tx_power_max_index:
            raise RegionError("TXPower %d not defined in %s" % (index, self.name))
        return (self.max_eirp if max_eirp is None else max_eirp) - self.tx_power_step * index

    def rx1_dr(self, up_dr, offset, dwell=False):
        """The RX1 data rate after an uplink at up_dr. AS923 (RP002; LoRaMac-node
        EffectiveRx1DrOffset*AS923, lrwn as923.rs): offsets 6 and 7 raise the DR by 1 and 2, and
        with the downlink dwell time (dwell) it is DR2 at least."""
        if not 0 <= offset < self.rx1_offsets:
            raise RegionError("RX1 DR offset %d not defined in %s" % (offset, self.name))
        return min(7, max(2 if dwell else 0, up_dr - offset if offset < 6 else up_dr + offset - 5))

    def freq_ok(self, freq):
        """A frequency the device may be told to use: inside the band and, where the region has
        duty-cycle sub-bands (EU868), inside one of them (not in the gaps between)."""
        return self.band[0] <= freq <= self.band[1] and (not self.duty or self.duty_band(freq) is not None)

    def lbt_params(self, freq):
        """(threshold dBm, carrier-sense time us) of listen before talk on freq: AS923 in Japan
        (ARIB STD-T108; LoRaMac-node RegionAS923.c): -80 dBm for 5 ms on channels 24-38 (920.6-923.4
        MHz), 1 ms (at least 128 us) on channels 39-61."""
        return -80, 5000 if freq <= 923400000 else 1000

    def rx1_freq(self, up_freq, channel):
        return up_freq

    def rx1_freq_of(self, up_freq):
        """The RX1 frequency after an uplink on up_freq (regions with fixed channels number it)."""
        ch = getattr(self, "uplink_channel", None)
        return self.rx1_freq(up_freq, ch(up_freq)) if ch else up_freq

    def check_radio(self, band_mhz):
        lo, hi = int(band_mhz[0] * 1000000), int(band_mhz[1] * 1000000)
        if self.band[0] < lo or self.band[1] > hi:
            raise RegionError("region %s (%.1f-%.1f MHz) is outside this board's radio band (%g-%g MHz)" % (
                self.name, self.band[0] / 1e6, self.band[1] / 1e6, band_mhz[0], band_mhz[1]))

    def duty_band(self, freq):
        """(low, high, 1/duty) of the sub-band freq falls in, or None when unregulated."""
        for b in self.duty:
            if b[0] <= freq < b[1]:
                return b
        return None


class _US915(Region):
    def __init__(self, subband):
        if not 1 <= subband <= 8:
            raise RegionError("US915 sub-band must be 1..8 (TTN and most networks use 2)")
        first = 8 * (subband - 1)
        chans = [(902300000 + 200000 * (first + i), 0, 3) for i in range(8)]
        chans.append((903000000 + 1600000 * (subband - 1), 4, 4))
        drs = ((10, 125000), (9, 125000), (8, 125000), (7, 125000), (8, 500000), None, None, None,
               (12, 500000), (11, 500000), (10, 500000), (9, 500000), (8, 500000), (7, 500000))
        max_n = (11, 53, 125, 242, 242, 0, 0, 0, 53, 129, 242, 242, 242, 242)
        super().__init__("US915", (902000000, 928000000), drs, max_n, chans, (923300000, 8), 30, dwell_ms=400,
                         max_n_dwell=max_n, rx1_offsets=4, tx_power_max_index=14)
        self.subband = subband
        self.cflist = False  # US915 Join-Accepts carry a channel mask (CFList type 1), not frequencies

    def rx1_dr(self, up_dr, offset, dwell=False):
        if not 0 <= offset < 4:
            raise RegionError("RX1 DR offset %d not defined in US915" % offset)
        if up_dr == 4:
            return (13, 13, 12, 11)[offset]
        return min(13, max(8, 10 + up_dr - offset))

    def rx1_freq(self, up_freq, channel):
        return 923300000 + 600000 * (channel % 8)


    def uplink_channel(self, freq):
        if freq >= 903000000 and (freq - 903000000) % 1600000 == 0 and freq <= 914200000:
            return 64 + (freq - 903000000) // 1600000
        return (freq - 902300000) // 200000


class _CN470(Region):
    def __init__(self):
        chans = [(470300000 + 200000 * i, 0, 5) for i in range(96)]
        super().__init__("CN470", (470000000, 510000000), _SF125, (51, 51, 51, 115, 242, 242), chans,
                         (505300000, 0), 19, cflist=False)

    def rx1_freq(self, up_freq, channel):
        return 500300000 + 200000 * (channel % 48)

    def uplink_channel(self, freq):
        return (freq - 470300000) // 200000


class _Single(Region):
    """One uplink channel and SF inside a region (a single-channel hotspot's): uplinks only there,
    at that data rate, ADR off; downlinks follow the region (RX1 on the channel's downlink
    frequency and DR, RX2 on the region's default until the network moves it)."""

    def __init__(self, base, freq, sf):
        drs = [i for i in range(len(base.drs)) if base.drs[i] == (sf, 125000)]
        if not drs:
            raise RegionError("%s has no 125 kHz data rate with SF%d" % (base.name, sf))
        if not base.band[0] <= freq <= base.band[1]:
            raise RegionError("%d Hz is outside %s" % (freq, base.name))
        dr = drs[0]
        if not base.freq_ok(freq):
            raise RegionError("%d Hz is in no sub-band of %s (a gap where no device may transmit)" % (freq, base.name))
        if base.max_payload(dr, base.dwell_ms > 0) == 0:
            raise RegionError("%s with the 400 ms dwell time carries no payload at SF%d: use SF%d or faster"
                              % (base.name, sf, base.dr(base.min_dr(True))[0]))
        super().__init__("SINGLE", base.band, base.drs, base.max_n, [(freq, dr, dr)], base.rx2, base.max_eirp,
                         base.duty, base.dwell_ms, base.max_n_dwell, base.lbt, False, base.rx1_offsets,
                         base.tx_power_step, base.tx_power_max_index)
        self.base = base
        self.family = base.name

    def rx1_dr(self, up_dr, offset, dwell=False):
        return self.base.rx1_dr(up_dr, offset, dwell)

    def rx1_freq_of(self, up_freq):
        return self.base.rx1_freq_of(up_freq)


# AS923 variants: the frequency offset from AS923-1 (RP002 2.8)
_AS923 = {1: 0, 2: -1800000, 3: -6600000, 4: -5900000}


def get(name, subband=2, lbt=None, freq=None, sf=None, base="EU868"):
    """The plan by name: EU868, US915 (sub-band), AS923-1..4 (lbt: listen before talk, as in
    Japan), CN470, or SINGLE (a single-channel hotspot's frequency and SF within the region
    `base`). A network with repeater-compatible payload sizes: set `repeater` on the plan."""
    n = name.upper()
    if n == "EU868":
        # ETSI EN 300 220 sub-bands as LoRaMac-node RegionEU868.c (VerifyRfFreq) numbers them; the
        # gaps 868.6-868.7, 869.2-869.4 and 869.65-869.7 MHz are in none
        duty = ((863000000, 865000000, 1000), (865000000, 868000000, 100), (868000000, 868600000, 100),
                (868700000, 869200000, 1000), (869400000, 869650000, 10), (869700000, 870000000, 100))
        return Region("EU868", (863000000, 870000000), _SF125 + ((7, 250000), None),
                      (51, 51, 51, 115, 242, 242, 242, 242), [(868100000, 0, 5), (868300000, 0, 5), (868500000, 0, 5)],
                      (869525000, 0), 16, duty)
    if n == "US915":
        return _US915(subband)
    if n.startswith("AS923"):
        variant = int(n[6:] or 1) if n[5:6] in ("", "-") else 0
        if variant not in _AS923:
            raise RegionError("AS923 variants are AS923-1, AS923-2, AS923-3 and AS923-4")
        off = _AS923[variant]
        return Region("AS923-%d" % variant, (915000000, 928000000), _SF125 + ((7, 250000), None),
                      (51, 51, 51, 115, 242, 242, 242, 242),
                      [(923200000 + off, 0, 5), (923400000 + off, 0, 5)], (923200000 + off, 2), 16, dwell_ms=400,
                      max_n_dwell=(0, 0, 11, 53, 125, 242, 242, 242), lbt=bool(lbt), rx1_offsets=8)
    if n == "CN470":
        return _CN470()
    if n == "SINGLE":
        if freq is None or sf is None:
            raise RegionError("the single-channel plan needs the hotspot's frequency and SF")
        if base.upper() == "SINGLE":
            raise RegionError("the single-channel plan lies within a region (EU868, US915, AS923-1..4, CN470)")
        return _Single(get(base, subband, lbt), freq, sf)
    raise RegionError("unknown region %r (EU868, US915, AS923-1..4, CN470, SINGLE)" % n)
