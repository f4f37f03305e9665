# make bench: LoRaWAN codec figures under MicroPython (112K heap): AES block operations per
# second, heap per uplink build and per downlink parse, time per uplink. One JSON line.
import gc
import json
import time

import cryptolib
from spot.lorawan import crypto, frame

NWK = bytes(range(16))
APP = bytes(range(16, 32))
DEVADDR = b"\x01\x02\x03\x04"
N = 500


def main():
    aes = cryptolib.aes(NWK, 1)
    blk = bytearray(16)
    out = bytearray(16)
    t0 = time.ticks_us()
    for _ in range(2000):
        aes.encrypt(blk, out)
    aes_per_s = 2000 * 1000000 // max(1, time.ticks_diff(time.ticks_us(), t0))
    s = crypto.Session(NWK, APP)
    buf = bytearray(255)
    payload = bytes(range(51))
    frame.build_uplink(buf, s, DEVADDR, 0, 2, payload)  # warm up
    gc.collect()
    a = gc.mem_alloc()
    t0 = time.ticks_us()
    for i in range(N):
        frame.build_uplink(buf, s, DEVADDR, i, 2, payload)
    up_us = time.ticks_diff(time.ticks_us(), t0) / N
    up_heap = (gc.mem_alloc() - a) / N
    # downlinks: build N with the uplink builder turned into MType 3 + downlink MIC
    down = []
    for i in range(20):
        n = frame.build_uplink(buf, s, DEVADDR, i, 3, b"hello")
        d = bytearray(buf[: n - 4])
        d[0] = 0x60
        s.crypt(d, 9, len(d), 3, crypto.UP, DEVADDR, i)  # undo the uplink encryption
        s.crypt(d, 9, len(d), 3, crypto.DOWN, DEVADDR, i)
        d += s.mic(d, crypto.DOWN, DEVADDR, i).to_bytes(4, "little")
        down.append(bytes(d))
    rx = bytearray(255)
    gc.collect()
    a = gc.mem_alloc()
    t0 = time.ticks_us()
    for i in range(20):
        n = len(down[i])
        rx[:n] = down[i]
        frame.parse_downlink(rx, n, s, DEVADDR, i - 1)
    down_us = time.ticks_diff(time.ticks_us(), t0) / 20
    down_heap = (gc.mem_alloc() - a) / 20
    print(json.dumps({"aes_blocks_per_s": aes_per_s, "uplink_us": up_us, "uplink_heap": up_heap,
                      "downlink_us": down_us, "downlink_heap": down_heap, "payload": len(payload)}))


main()
