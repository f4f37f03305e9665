# The hotspot's status page on its network (config http_port; 0: off): a read-only page at / and
# the same figures at /status.json. Nothing is changed through it: changes go through the console
# or the authenticated update service. Loaded only on a hotspot that serves it.
import gc
import json
from binascii import hexlify
from struct import pack_into, unpack_from

from micropython import const

from spot import VERSION

MTYPES = ("join_request", "join_accept", "unconfirmed_up", "unconfirmed_down", "confirmed_up",
          "confirmed_down", "rejoin_request", "proprietary")
COUNTERS = ("rx", "rx_crc", "forwarded", "nomem", "down", "tx", "tx_fail", "tx_refused", "bad_datagrams",
            "up_sent", "up_acked")
RECENT = const(4)  # frames remembered for the page


def watch(hs):
    """Keep the last RECENT frames hs forwards in a ring beside it (newest at recent_n - 1, mod
    RECENT): DevAddr as sent (little-endian, 0 without one), RSSI, SNR in quarter dB, the frame's
    first byte. Hooked on hs.received here, so a hotspot without the page carries none of it; no
    heap per packet."""
    if getattr(hs, "recent", None) is not None:
        return
    hs.recent = r = bytearray(RECENT * 8)
    hs.recent_n = 0
    received = hs.received

    def remember(p):
        received(p)
        if not (p.crc_ok or hs.forward_crc):
            return
        b = (hs.recent_n % RECENT) * 8
        src = p.buf
        data = p.length >= 5 and 0x40 <= src[0] < 0xC0  # the data frames carry a DevAddr
        for k in range(4):
            r[b + k] = src[1 + k] if data else 0
        pack_into("<hbB", r, b + 4, p.rssi, p.snr_x4, src[0] if p.length else 0)
        hs.recent_n += 1

    hs.received = remember


def recent_frames(hs):
    """The last frames the hotspot heard, newest first."""
    out = []
    r = hs.recent
    n = hs.recent_n
    for i in range(min(n, RECENT)):
        b = ((n - 1 - i) % RECENT) * 8
        rssi, snr_x4, mhdr = unpack_from("<hbB", r, b + 4)
        addr = None
        if 0x40 <= mhdr < 0xC0:
            addr = hexlify(bytes((r[b + 3], r[b + 2], r[b + 1], r[b]))).decode().upper()
        out.append({"dev_addr": addr, "rssi": rssi, "snr": snr_x4 / 4, "type": MTYPES[mhdr >> 5]})
    return out


def data(app):
    hs = app.hotspot
    out = {"role": "hotspot", "name": app.config.get("name"), "id": app.board.device_id(),
           "uptime_s": app.clock.uptime_ms() // 1000, "fw": VERSION, "app": app.app_info().get("version"),
           "free_heap": gc.mem_free()}
    if hs is not None:
        watch(hs)
        dropped = hs.backlog.dropped
        out.update({"backhaul": hs.backhaul, "freq": hs.freq, "sf": hs.sf,
                    "packets": {k: hs.stats[k] for k in COUNTERS},
                    "dropped": dict(dropped), "dropped_total": sum(dropped.values()),
                    "queued": len(hs.backlog), "last_frames": recent_frames(hs)})
        chain = getattr(hs, "receipts", None)  # the chain head, where receipts are on (spot.hotspot.chain)
        if chain is not None:
            out["receipts"] = chain.head()
    else:
        out["backhaul"] = "off"
    net = getattr(app, "network", None)
    out["network"] = net.state if net is not None else "none"
    return out


PAGE = ("<!DOCTYPE html><html><head><meta charset=utf-8><meta name=viewport content='width=device-width'>"
        "<meta http-equiv=refresh content=10><title>%s</title></head><body><h1>%s</h1><table>%s</table>"
        "<h2>Last frames</h2><table><tr><th>DevAddr<th>RSSI<th>SNR<th>type</tr>%s</table>"
        "<p>Read only: changes go through loraspot.</p></body></html>")


def _row(name, value):
    from spot.web import escape

    return "<tr><th align=left>%s<td>%s</tr>" % (escape(name), escape(value))


def handle(app, req):
    if req.method != "GET":
        return 405, "text/plain", b"read only: changes go through loraspot"
    if req.path == "/status.json":
        return 200, "application/json", json.dumps(data(app)).encode()
    if req.path != "/":
        return 404, "text/plain", b"not found"
    from spot.web import escape

    d = data(app)
    frames = d.pop("last_frames", [])
    rows = []
    for k, v in d.items():
        if isinstance(v, dict):
            for k2, v2 in v.items():
                rows.append(_row("%s %s" % (k, k2), v2))
        else:
            rows.append(_row(k, v))
    title = escape(d.get("name") or "loraspot hotspot")
    fr = "".join("<tr><td>%s<td>%d<td>%.1f<td>%s</tr>" % (f["dev_addr"] or "-", f["rssi"], f["snr"], f["type"])
                 for f in frames)
    return 200, "text/html; charset=utf-8", (PAGE % (title, title, "".join(rows), fr)).encode()


def prepare(app):
    """The listening socket and the request buffer, made at start-up with the hotspot's own
    buffers (a heap the running hotspot has cut up may have no kilobyte in one piece); None if the
    port cannot be had (said in a log event)."""
    from spot import web

    port = app.config.get("http_port")
    try:
        sock = web.listen(app, port)
    except OSError as e:
        app.console.event("log", {"level": "error", "msg": "status page: port %d: %s" % (port, e)})
        return None
    return sock, bytearray(web.MAX_REQUEST), {"requests": 0, "refused": 0}


async def run(app, prepared):
    from spot import web

    sock, buf, counts = prepared
    if app.hotspot is not None:
        watch(app.hotspot)
    await web.serve(sock, lambda req: handle(app, req), counts, app.clock, buf)
