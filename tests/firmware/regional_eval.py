# Evaluates regional-parameter conformance cases (tests/data/regional/conformance.json) with the
# firmware's own region, mac and join modules: under MicroPython at the board's heap, and in
# CPython for the host, which loads the same region module (loraspot.resources.firmware_module).
# Plain code both interpreters run; each case gives back a JSON value the test compares.
from binascii import hexlify, unhexlify


def _plan(region, c):
    r = region.get(c["region"], c.get("sub_band", 2), c.get("lbt"), freq=c.get("freq"), sf=c.get("sf"),
                   base=c.get("base", "EU868"))
    r.repeater = c.get("repeater", False)
    return r


def _state(st):
    ch = st.channels
    return {"answer": "", "enabled": st.enabled(), "freqs": [ch.f[i] for i in range(len(ch))], "dr": st.dr,
            "tx_power": st.tx_power, "nb_trans": st.nb_trans, "rx1_dr_offset": st.rx1_dr_offset,
            "rx2": [st.rx2_freq, st.rx2_dr], "rx1_delay": st.rx1_delay, "max_eirp": st.max_eirp,
            "uplink_dwell": st.uplink_dwell, "downlink_dwell": st.downlink_dwell,
            "dl": [ch.dl[i] for i in range(len(ch))]}


def one(region, mac, join, c):
    r = _plan(region, c)
    k = c["check"]
    a = c.get("args", [])
    if k == "dr":
        d = r.dr(a[0])
        return [d[0], d[1]]
    if k == "max_payload":
        return r.max_payload(a[0], a[1] if len(a) > 1 else False)
    if k == "rx1_dr":
        return r.rx1_dr(a[0], a[1], a[2] if len(a) > 2 else False)
    if k == "rx1_freq":
        return r.rx1_freq_of(a[0])
    if k == "tx_power":
        return r.tx_power(a[0], a[1] if len(a) > 1 else None)
    if k == "channels":
        return [[f, lo, hi] for f, lo, hi in r.channels]
    if k == "rx2":
        return [r.rx2[0], r.rx2[1]]
    if k == "duty":  # 1/duty cycle of the sub-band, 0 where none is defined
        b = r.duty_band(a[0])
        return b[2] if b else 0
    if k == "freq_ok":
        return r.freq_ok(a[0])
    if k == "min_dr":
        return r.min_dr(a[0])
    if k == "lbt":
        return [r.lbt, list(r.lbt_params(a[0])) if r.lbt else None]
    if k == "delays":
        return [r.receive_delay1, r.join_delays[0], r.join_delays[1]]
    if k == "mac":  # MAC commands (hex) in turn on a fresh state; the answers of the last and the state
        if mac is None:
            return {"skipped": True}
        st = mac.MacState(r)
        ans = b""
        for cmds in c["cmds"]:
            ans = mac.handle(st, unhexlify(cmds.replace(" ", "")))
        out = _state(st)
        out["answer"] = hexlify(ans).decode()
        return out
    if k == "join_accept":  # DLSettings, RxDelay and CFList (hex or none) of a Join-Accept
        if join is None:
            return {"skipped": True}
        cf = c.get("cflist")
        st = join.settings(r, a[0], a[1], unhexlify(cf.replace(" ", "")) if cf else None)
        return None if st is None else _state(st)
    raise ValueError("unknown check " + k)


def run(region, mac, join, cases):
    out = []
    for c in cases:
        try:
            out.append(one(region, mac, join, c))
        except Exception as e:  # a refusal is an answer too: compared by its class name
            out.append({"error": type(e).__name__})
    return out
