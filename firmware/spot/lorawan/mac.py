# LoRaWAN 1.0.3 MAC commands (section 5): the network's requests from a downlink's FOpts or
# FPort 0 payload are applied to the device's MAC state and answered; answers that must repeat
# until a downlink arrives (RXParamSetupAns, RXTimingSetupAns, DlChannelAns) are kept "sticky".
# A truncated or unknown command ends the parsing (the rest cannot be delimited) and is counted.

from array import array

# downlink CID -> payload length
_DOWN_LEN = {0x02: 2, 0x03: 4, 0x04: 1, 0x05: 4, 0x06: 0, 0x07: 5, 0x08: 1, 0x09: 1, 0x0A: 4, 0x0D: 5}
_UP_LEN = {0x02: 0, 0x03: 1, 0x04: 0, 0x05: 1, 0x06: 2, 0x07: 1, 0x08: 0, 0x09: 0, 0x0A: 1, 0x0D: 0}
MAX_EIRP = (8, 10, 12, 13, 14, 16, 18, 20, 21, 24, 26, 27, 29, 30, 33, 36)  # TxParamSetupReq index -> dBm


class Channels:
    """The channel table in parallel arrays (72 US915 channels as lists of lists would cost
    ~6 KB of heap on the unix port): frequency, DR range, enabled, downlink frequency (0: same)."""

    def __init__(self):
        self.f = array("I")
        self.dl = array("I")
        self.lo = bytearray()
        self.hi = bytearray()
        self.on = bytearray()

    def __len__(self):
        return len(self.f)

    def put(self, i, freq, lo, hi, on=True):
        while len(self.f) <= i:
            self.f.append(0)
            self.dl.append(0)
            self.lo.append(0)
            self.hi.append(0)
            self.on.append(0)
        self.f[i], self.lo[i], self.hi[i], self.on[i], self.dl[i] = freq, lo, hi, 1 if on else 0, 0

    def enabled(self):
        return [i for i in range(len(self.f)) if self.on[i]]

    def row(self, i):
        return (self.f[i], self.lo[i], self.hi[i], bool(self.on[i]), self.dl[i])


class MacState:
    """What MAC commands change; starts from the region's defaults."""

    def __init__(self, region):
        self.region = region
        self.channels = ch = Channels()
        self.fixed_plan = hasattr(region, "uplink_channel")  # US915/CN470: channels by index, masks only
        if region.name == "US915":
            for i in range(64):
                ch.put(i, 902300000 + 200000 * i, 0, 3, False)
            for i in range(8):
                ch.put(64 + i, 903000000 + 1600000 * i, 4, 4, False)
            for f, _lo, _hi in region.channels:
                ch.on[region.uplink_channel(f)] = 1
        else:
            for f, lo, hi in region.channels:
                ch.put(len(ch), f, lo, hi)
        self.dr = region.channels[0][2] if region.name == "SINGLE" else 0
        self.tx_power = 0
        self.nb_trans = 1
        self.rx1_dr_offset = 0
        self.rx2_freq, self.rx2_dr = region.rx2
        self.rx1_delay = region.receive_delay1
        self.max_duty = 0  # DutyCycleReq: aggregated duty cycle 1/2^n (0: none)
        self.uplink_dwell = region.dwell_ms > 0
        self.downlink_dwell = region.dwell_ms > 0
        self.max_eirp = region.max_eirp
        self.link_check = None  # (margin dB, gateways)
        self.device_time = None  # (GPS seconds, 1/256 s)
        self.sticky = b""  # answers repeated until a downlink arrives
        self.errors = 0

    def enabled(self):
        return self.channels.enabled()


def _freq(b, i):
    return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16)) * 100


def _dr_ok(region, dr):
    return 0 <= dr < len(region.drs) and region.drs[dr] is not None


def _link_adr(st, cmds):
    """A block of contiguous LinkADRReqs, applied all-or-nothing (section 5.3). Returns the status."""
    r = st.region
    ch = st.channels
    mask = [bool(v) for v in ch.on]
    chmask_ok = True
    for data_power, m, redundancy in cmds:
        cntl = (redundancy >> 4) & 7
        if st.fixed_plan and r.name == "US915":
            if cntl <= 3:
                for i in range(16):
                    mask[16 * cntl + i] = bool(m >> i & 1)
            elif cntl == 4:
                for i in range(8):
                    mask[64 + i] = bool(m >> i & 1)
            elif cntl in (6, 7):
                for i in range(64):
                    mask[i] = cntl == 6
                for i in range(8):
                    mask[64 + i] = bool(m >> i & 1)
            else:
                chmask_ok = False
        elif cntl == 0 or (cntl <= 5 and r.name == "CN470"):
            # ChMaskCntl n: channels 16n..16n+15 (CN470's 96 channels: n = 0..5)
            for i in range(16):
                k = 16 * cntl + i
                if k < len(mask) and ch.f[k]:
                    mask[k] = bool(m >> i & 1)
                elif m >> i & 1:
                    chmask_ok = False  # enables a channel that is not defined (or was deleted)
        elif cntl == 6:
            mask = [ch.f[i] != 0 for i in range(len(mask))]  # every defined channel on
        else:
            chmask_ok = False
    if not any(mask):
        chmask_ok = False
    if r.name == "SINGLE" and not mask[0]:
        chmask_ok = False  # would move the node off the hotspot's only channel
    data_power, _m, redundancy = cmds[-1]
    dr, power = data_power >> 4, data_power & 0x0F
    if dr == 0x0F:
        dr = st.dr
    if power == 0x0F:
        power = st.tx_power
    dr_ok = (_dr_ok(r, dr) and r.max_payload(dr, st.uplink_dwell) > 0
             and any(mask[i] and ch.lo[i] <= dr <= ch.hi[i] for i in range(len(mask))))
    if r.name == "SINGLE":
        dr_ok = dr == st.dr
    power_ok = 0 <= power <= r.tx_power_max_index
    status = (0x04 if power_ok else 0) | (0x02 if dr_ok else 0) | (0x01 if chmask_ok else 0)
    if status == 0x07:
        for i in range(len(mask)):
            ch.on[i] = 1 if mask[i] else 0
        st.dr, st.tx_power = dr, power
        st.nb_trans = (redundancy & 0x0F) or 1
    return status


def handle(st, cmds, battery=255, margin=0):
    """Apply the downlink MAC commands in `cmds`; returns the answers for the next uplink (bytes)."""
    out = bytearray()
    sticky = bytearray()
    r = st.region
    i, n = 0, len(cmds)
    while i < n:
        cid = cmds[i]
        size = _DOWN_LEN.get(cid)
        if size is None or i + 1 + size > n:
            st.errors += 1
            break
        b = cmds[i + 1 : i + 1 + size]
        i += 1 + size
        if cid == 0x03:
            block = [(b[0], b[1] | (b[2] << 8), b[3])]
            while i + 5 <= n and cmds[i] == 0x03:
                c = cmds[i + 1 : i + 5]
                block.append((c[0], c[1] | (c[2] << 8), c[3]))
                i += 5
            status = _link_adr(st, block)
            for _ in block:  # one answer per request, all with the same status
                out += bytes((0x03, status))
        elif cid == 0x02:
            st.link_check = (b[0], b[1])
        elif cid == 0x04:
            st.max_duty = b[0] & 0x0F
            out.append(0x04)
        elif cid == 0x05:
            off, rx2dr, f = (b[0] >> 4) & 7, b[0] & 0x0F, _freq(b, 1)
            ok_f = r.freq_ok(f)
            ok_dr = r.rx_dr_ok(rx2dr)
            ok_off = off < r.rx1_offsets
            status = (0x04 if ok_off else 0) | (0x02 if ok_dr else 0) | (0x01 if ok_f else 0)
            if status == 0x07:
                st.rx1_dr_offset, st.rx2_dr, st.rx2_freq = off, rx2dr, f
            sticky += bytes((0x05, status))
        elif cid == 0x06:
            m = max(-32, min(31, margin)) & 0x3F
            out += bytes((0x06, battery, m))
        elif cid == 0x07 and not st.fixed_plan:  # US915/CN470 do not define it: no answer (as LoRaMac-node)
            idx, f, lo, hi = b[0], _freq(b, 1), b[4] & 0x0F, b[4] >> 4
            if r.name == "SINGLE" or idx < len(r.channels) or idx >= 16:
                status = 0  # the single channel, default channels, no channel 16+
            else:
                ok_f = f == 0 or r.freq_ok(f)
                ok_dr = lo <= hi and _dr_ok(r, lo) and _dr_ok(r, hi)
                status = (0x02 if ok_dr else 0) | (0x01 if ok_f else 0)
                if status == 0x03:
                    st.channels.put(idx, f, lo, hi, f != 0)
            out += bytes((0x07, status))
        elif cid == 0x08:
            st.rx1_delay = (b[0] & 0x0F) or 1
            sticky.append(0x08)
        elif cid == 0x09:
            if r.family.startswith("AS923"):  # other regions do not implement it: no answer
                st.downlink_dwell = b[0] & 0x20 != 0
                st.uplink_dwell = b[0] & 0x10 != 0
                st.max_eirp = MAX_EIRP[b[0] & 0x0F]
                out.append(0x09)
        elif cid == 0x0A and not st.fixed_plan:
            idx, f = b[0], _freq(b, 1)
            exists = idx < len(st.channels) and st.channels.f[idx] != 0
            ok_f = r.freq_ok(f)
            status = (0x02 if exists else 0) | (0x01 if ok_f else 0)
            if status == 0x03:
                st.channels.dl[idx] = f
            sticky += bytes((0x0A, status))
        elif cid == 0x0D:
            st.device_time = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24), b[4])
    st.sticky = bytes(sticky)
    return bytes(out) + st.sticky


def fit(answers, room=15):
    """The longest run of whole uplink MAC commands from `answers` within `room` bytes, and the rest."""
    i = 0
    while i < len(answers):
        n = 1 + _UP_LEN.get(answers[i], 0)
        if i + n > room:
            break
        i += n
    return answers[:i], answers[i:]
