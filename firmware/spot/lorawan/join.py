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
    rx1 = (lw.region.rx1_freq_of(ch[0]), lw.region.rx1_dr(lw.mac.dr, 0))
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
    nwk, app = derive(appkey, plain[1:7], req[17:19])
    lw.secrets.put("nwk_s_key", nwk)
    lw.secrets.put("app_s_key", app)
    lw.devaddr = bytes(plain[7:11])
    lw.session = crypto.Session(nwk, app)
    lw.counters.new_session(hexlify(lw.devaddr).decode())
    dl, delay = plain[11], plain[12] & 0x0F
    dr = lw.mac.dr  # uplinks go on at the data rate that joined until ADR says otherwise
    state = mac.MacState(lw.region)
    lw.mac = state
    state.dr = dr
    state.rx1_dr_offset = (dl >> 4) & 7
    state.rx2_dr = dl & 0x0F
    state.rx1_delay = delay or 1
    if n == 33 and lw.region.name != "SINGLE":  # the single-channel plan ignores a CFList
        if lw.region.cflist and plain[28] == 0:  # type 0: up to 5 more frequencies
            for i in range(5):
                f = (plain[13 + 3 * i] | (plain[14 + 3 * i] << 8) | (plain[15 + 3 * i] << 16)) * 100
                if f:
                    state.channels.put(len(state.channels), f, 0, 5)
        elif plain[28] == 1 and state.fixed_plan:  # type 1: channel masks (US915, CN470)
            for i in range(min(len(state.channels), 80)):
                m = plain[13 + 2 * (i // 16)] | (plain[14 + 2 * (i // 16)] << 8)
                state.channels.on[i] = m >> (i % 16) & 1
    lw.adr_ack_cnt = 0
    lw.join_attempts = 0
    return True
