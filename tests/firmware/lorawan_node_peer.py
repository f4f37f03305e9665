# A LoRaWAN node (the firmware's stack and virtual radio) in its own MicroPython process, for
# tests/host/test_lorawan_e2e.py:  lorawan_node_peer.py HOST PORT SPEED STATE_DIR DEV_EUI APPKEY_HEX
# Joins, sends a confirmed uplink, prints JSON lines (never a key).
import asyncio
import json
import sys
from binascii import unhexlify

from spot.clock import Clock
from spot.config import Secrets
from spot.lorawan import region
from spot.lorawan.stack import LoRaWAN
from spot.lorawan.store import Counters
from spot.radio.virtual import VirtualRadio

host, port, speed, state, dev_eui, appkey = sys.argv[1:7]
clock = Clock(speed=int(speed))
PROFILE = {"chip": "virtual", "band_mhz": [862, 1020], "max_power_dbm": 20}
radio = VirtualRadio(clock, PROFILE, (host, int(port)), (300, 0, 0), "node-" + dev_eui)
secrets = Secrets(state + "/secrets.json")
secrets.put("app_key", unhexlify(appkey))
counters = Counters(state + "/lorawan.json").load()
node = LoRaWAN(region.get("EU868"), radio, clock, counters, secrets, dev_eui)


async def main():
    joined = False
    for attempt in range(3):
        joined = await node.join(dr=5)
        print(json.dumps({"event": "join", "attempt": attempt, "joined": joined, "rejects": node.rejects}))
        if joined:
            break
    if not joined:
        return
    print(json.dumps({"event": "session", "devaddr": node.devaddr.hex()}))
    for i in range(2):
        r = await node.send(2, b"temp=21.5;%d" % i, confirmed=True)
        d = r.downlink
        print(json.dumps({"event": "uplink", "fcnt": r.fcnt, "ack": r.ack, "window": r.window,
                          "airtime": r.airtime_us, "start": node.radio.world(r.start_us),
                          "end": node.radio.world(r.end_us), "down_fport": d.fport if d else None,
                          "down_payload": d.payload.hex() if d and d.payload else ""}))
    radio.close()


asyncio.run(main())
