# OTAA activation (LoRaWAN 1.0.3 section 6.2): the Join-Request, the Join-Accept and its CFList,
# session key derivation. A session needs this once, so the stack loads it for a join and drops it
# afterwards (LoRaWAN.join): on a 112 KB heap the RAM is worth more than the import time.
from binascii import hexlify

from spot.lorawan import JoinFailed, crypto, frame, mac


def join_mic(appkey, msg):
    """MIC of a Join-Request (MHDR|AppEUI|DevEUI|DevNonce) or a decrypted Join-Accept (without MIC)."""
    t = appkey.cmac(None, msg)
    return t[0] | (t[1] << 8) | (t[2] << 16) | (t[3] << 24)


def decrypt_join_accept(appkey, phy):
    """MHDR + AES-encrypt(AppKey) of the rest, as the spec prescribes (the server 'decrypts')."""
    n = len(phy)
    if n not in (17, 33):
        raise ValueError("Join-Accept must be 17 or 33 bytes, got %d" % n)
    out = bytearray(phy)
    blk = bytearray(16)
    for pos in range(1, n, 16):
        appkey.encrypt_block(phy[pos : pos + 16], blk)
        out[pos : pos + 16] = blk
    return out


def derive(appkey, appnonce_netid, devnonce):
    """(NwkSKey, AppSKey) from AppNonce|NetID (6 bytes, wire order) and DevNonce (2 bytes)."""
    blk = bytearray(16)
    blk[1:7] = appnonce_netid
    blk[7:9] = devnonce
    nwk = bytearray(16)
    app = bytearray(16)
    blk[0] = 0x01
    appkey.encrypt_block(blk, nwk)
    blk[0] = 0x02
    appkey.encrypt_block(blk, app)
    return nwk, app


async def attempt(lw, dr):
    """One OTAA attempt of `lw` (a LoRaWAN): Join-Request, then RX1 (5 s) and RX2 (6 s)."""
    appkey_raw = lw.secrets.get("app_key")
    if appkey_raw is None:
        raise JoinFailed("no app_key stored: set it with keys.set")
    appkey = crypto.Key(appkey_raw)
    lw.join_attempts += 1
    if dr is not None:
        lw.mac.dr = dr
    elif lw.mac.fixed_plan and lw.region.name == "US915":
        # RP002 US915: Join-Requests alternate between a 125 kHz channel at DR0 and the
        # sub-band's 500 kHz channel at DR4
        lw.mac.dr = 4 if lw.join_attempts % 2 == 0 else 0
    sf, bw = lw.region.dr(lw.mac.dr)
    ch = lw.pick_channel()
    req = bytearray(23)
    req[1:9] = lw.join_eui
    req[9:17] = lw.dev_eui
    airtime = lw.frame_airtime_us(23, sf, bw)
    await lw.wait_duty(ch[0], airtime, join=True)
    nonce = lw.counters.next_devnonce()  # on flash before the radio sends it
    req[17] = nonce & 0xFF
    req[18] = nonce >> 8
    mic = join_mic(appkey, memoryview(req)[:19])
    req[19:23] = mic.to_bytes(4, "little")
    _start, end = await lw.send_frame(req, ch[0], sf, bw)
    lw.join_backoff.record(airtime, lw.clock.ticks_ms())
    d1, d2 = lw.region.join_delays
    rx1 = (lw.region.rx1_freq_of(ch[0]), lw.region.rx1_dr(lw.mac.dr, 0, lw.mac.downlink_dwell))
    for delay, (freq, rdr) in ((d1, rx1), (d2, (lw.mac.rx2_freq, lw.mac.rx2_dr))):
        p = await lw.rx_window(end, delay, freq, rdr)
        if p is not None and accept(lw, appkey, p, req):
            lw.stats["joins"] += 1
            return True
    lw.stats["join_fail"] += 1
    return False


def accept(lw, appkey, p, req):
    """Check and apply a received Join-Accept; False (counted in lw.rejects) when it is not one
    for this Join-Request."""
    n = p.length
    if n not in (17, 33) or p.buf[0] >> 5 != frame.JOIN_ACCEPT:
        lw.reject("join_accept")
        return False
    plain = decrypt_join_accept(appkey, bytes(p.payload()))
    mic = plain[n - 4] | (plain[n - 3] << 8) | (plain[n - 2] << 16) | (plain[n - 1] << 24)
    if join_mic(appkey, memoryview(plain)[: n - 4]) != mic:
        lw.reject("join_mic")
        return False
    state = settings(lw.region, plain[11], plain[12] & 0x0F, plain[13:29] if n == 33 else None)
    if state is None:
        lw.reject("join_settings")  # nothing changed: the next attempt goes on as before
        return False
    state.dr = lw.mac.dr  # uplinks go on at the data rate that joined until ADR says otherwise
    nwk, app = derive(appkey, plain[1:7], req[17:19])
    lw.secrets.put("nwk_s_key", nwk)
    lw.secrets.put("app_s_key", app)
    lw.devaddr = bytes(plain[7:11])
    lw.session = crypto.Session(nwk, app)
    lw.counters.new_session(hexlify(lw.devaddr).decode())
    lw.mac = state
    lw.adr_ack_cnt = 0
    lw.join_attempts = 0
    return True


def settings(r, dl, delay, cflist):
    """The MAC state a Join-Accept sets up (DLSettings, RxDelay, CFList), or None when its
    settings cannot be used in region r (an RX1DROffset or RX2 data rate it does not define):
    checked before anything changes. A CFList's frequency outside the region's sub-bands is
    skipped, as a NewChannelReq for it would be refused."""
    offset, rx2 = (dl >> 4) & 7, dl & 0x0F
    if offset >= r.rx1_offsets or not r.rx_dr_ok(rx2):
        return None
    state = mac.MacState(r)
    state.rx1_dr_offset, state.rx2_dr, state.rx1_delay = offset, rx2, delay or 1
    if cflist is None or r.name == "SINGLE":  # the single-channel plan ignores a CFList
        return state
    ch = state.channels
    if r.cflist and cflist[15] == 0:  # type 0: up to 5 more frequencies (channels 3.., 2.. in AS923)
        for i in range(5):
            f = (cflist[3 * i] | (cflist[3 * i + 1] << 8) | (cflist[3 * i + 2] << 16)) * 100
            if f and r.freq_ok(f):
                ch.put(len(r.channels) + i, f, 0, 5)
    elif cflist[15] == 1 and state.fixed_plan:  # type 1: channel masks, 16 channels each (US915, CN470)
        for i in range(len(ch)):
            ch.on[i] = (cflist[2 * (i // 16)] | (cflist[2 * (i // 16) + 1] << 8)) >> (i % 16) & 1
    return state
