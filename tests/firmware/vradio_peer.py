# A virtual radio in its own MicroPython process, driven by tests/host/test_virtual_radio.py:
#   vradio_peer.py HOST PORT ID X SPEED rx-cont COUNT
#   vradio_peer.py HOST PORT ID X SPEED rx-window WORLD_START SYMBOLS
#   vradio_peer.py HOST PORT ID X SPEED tx WORLD_DEADLINE PAYLOAD_HEX
#   vradio_peer.py HOST PORT ID X SPEED rx-tx WORLD_DEADLINE PAYLOAD_HEX  (listening, then a transmit;
#       then the packets it received)
#   vradio_peer.py HOST PORT ID X SPEED tx-full WORLD_DEADLINE PAYLOAD_HEX  (a transmit whose answer
#       comes to a full heap)
# Prints one JSON line per result; "ready" once listening.
import asyncio
import binascii
import gc
import json
import sys

from spot.clock import Clock
from spot.radio.virtual import VirtualRadio

host, port, rid, x, speed, mode = sys.argv[1:7]
args = sys.argv[7:]
PROFILE = {"chip": "virtual", "band_mhz": [862, 1020], "max_power_dbm": 20}
radio = VirtualRadio(Clock(speed=int(speed)), PROFILE, (host, int(port)), (float(x), 0, 0), rid)
radio.configure(freq=868100000, sf=7, bw=125000, power=14, iq_inverted=mode == "rx-window")


def out(**kw):
    print(json.dumps(kw))


def report(p):
    out(payload=binascii.hexlify(bytes(p.payload())).decode(), t_us=p.t_us, world=radio.world(p.t_us), rssi=p.rssi,
        snr_x4=p.snr_x4, freq=p.freq, sf=p.sf, airtime=radio.airtime_us(p.length))


async def main():
    if mode == "rx-cont":
        radio.start_receive()
        out(event="ready")
        gc.collect()
        for _ in range(int(args[0])):
            report(await radio.recv())
    elif mode == "rx-window":
        start = radio.ticks(int(args[0]))
        out(event="ready", roundtrip=radio.world(start) == int(args[0]))
        p = await radio.receive_window(start, int(args[1]))
        if p is None:
            out(event="timeout")
        else:
            report(p)
    elif mode == "rx-tx":
        radio.start_receive()
        out(event="ready")
        deadline = radio.ticks(int(args[0]))
        start, end = await radio.transmit_at(binascii.unhexlify(args[1]), deadline)
        out(world_start=radio.world(start), world_end=radio.world(end))
        report(await radio.recv())
    elif mode == "tx-full":
        # the heap filled while the transmission's end is awaited: recv has no room for the answer
        radio._spare = [bytearray(768)]  # the block vboot keeps for it on a virtual board
        deadline = radio.ticks(int(args[0]))
        full = []

        async def fill():
            while radio._waiting != b"D":
                await asyncio.sleep_ms(1)
            try:
                while True:
                    full.append(bytearray(16))
            except MemoryError:
                pass

        filler = asyncio.create_task(fill())
        try:
            start, end = await radio.transmit_at(binascii.unhexlify(args[1]), deadline)
            done = None
        except Exception as e:
            done = e
        filler.cancel()
        lent = not radio._spare
        full = None
        gc.collect()
        out(error=str(done) if done else None, lent=lent, world_end=None if done else radio.world(end))
    else:
        radio.configure(iq_inverted=args[2] == "down" if len(args) > 2 else False)
        deadline = radio.ticks(int(args[0]))
        start, end = await radio.transmit_at(binascii.unhexlify(args[1]), deadline)
        out(start=start, end=end, deadline=deadline, world_start=radio.world(start), world_end=radio.world(end))
    radio.close()


asyncio.run(main())
