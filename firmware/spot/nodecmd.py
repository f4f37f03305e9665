# The node's downlink commands on the command port (docs/node.md) and its status frame, loaded
# only when a command arrives (spot.node._aux). It uses the node's public surface only and imports
# nothing of spot.node.
import struct

# downlink commands on the command port (docs/node.md)
CMD_INTERVAL = 0x01  # u32 BE seconds
CMD_STATUS = 0x02  # answer with a status frame on the command port
CMD_CONFIRM = 0x03  # u8: confirm every Nth uplink (0: never)
CMD_REJOIN = 0x04


def downlink(node, r):
    """Report a downlink and act on a command on the command port."""
    d = r.downlink
    ev = {"fcnt": d.fcnt, "fport": d.fport, "bytes": len(d.payload), "window": r.window, "ack": r.ack,
          "snr": node.lw.last_snr}
    if d.fport == node.config.get("cmd_port") and d.payload:
        try:
            ev["cmd"] = command(node, bytes(d.payload))
        except (ValueError, IndexError) as e:
            ev["error"] = str(e) or "malformed command"
    node.console.event("downlink", ev)


def command(node, p):
    op = p[0]
    if op == CMD_INTERVAL:
        if len(p) != 5:
            raise ValueError("interval: 4 bytes of seconds expected")
        secs = struct.unpack(">I", p[1:])[0]
        node.config.set({"uplink_interval": secs})  # validated (range) and stored atomically
        return {"uplink_interval": secs}
    if op == CMD_STATUS:
        node.status_due = True
        return {"status": True}
    if op == CMD_CONFIRM:
        if len(p) != 2:
            raise ValueError("confirm: 1 byte expected")
        node.config.set({"confirm_every": p[1]})
        return {"confirm_every": p[1]}
    if op == CMD_REJOIN:
        node.rejoin_asked = True
        return {"rejoin": True}
    raise ValueError("unknown command 0x%02x" % op)

def status_frame(node):
    """0x02, firmware version (3 bytes), interval s (u32), uplinks (u32), last SNR (i8),
    battery mV (u16, 0: none), sensors that failed their last read (u8)."""
    from spot import VERSION

    ver = [int(x) for x in VERSION.split(".")[:3]]
    mv = 0
    failed = 0
    for i, s in enumerate(node.sensors):
        v = node.readings[i]
        if v is None:
            failed += 1
        elif s.NAME == "battery":
            mv = int(v[0] * 1000 + 0.5)
    return struct.pack(">B3BIIbHB", CMD_STATUS, ver[0], ver[1], ver[2], node.config.get("uplink_interval"),
                       node.lw.stats["uplinks"], max(-128, min(127, node.lw.last_snr)), mv, failed)
