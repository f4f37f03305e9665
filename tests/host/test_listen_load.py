"""The long tier's load on `loraspot listen`: eight hotspots each forward the same 1,000 uplinks
as fast as the server acknowledges them. Every datagram is acknowledged and counted, every frame
handled once (de-duplicated across the eight) and decrypted, none refused as a replay."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
from loraspot.listen import semtech as st
from loraspot.listen.server import Listener
from loraspot.lorawan import frame

pytestmark = pytest.mark.long

ADDR, NWK, APP = "26011BDA", bytes(range(16, 32)), bytes(range(32, 48))
FRAMES = 1000
HOTSPOTS = 8


def _hotspot(port: int, n: int, phys: list[bytes], acked: list[int], errors: list[str],
             together: threading.Barrier) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(30)  # a hang guard only: each datagram waits for its acknowledgement
    eui = bytes([0xAA, 0x55, 0x5A, 0, 0, 0, 0, n])
    try:
        for k, phy in enumerate(phys):
            together.wait()  # the eight hear each frame at the same moment, as on the air
            token = (k + 1) & 0xFFFF
            rxpk = {"tmst": k * 1000, "chan": 0, "rfch": 0, "freq": 868.1, "stat": 1, "modu": "LORA",
                    "datr": "SF7BW125", "codr": "4/5", "rssi": -60 - n, "lsnr": 9.0 - n, "size": len(phy),
                    "data": base64.b64encode(phy).decode()}
            sock.sendto(bytes([2]) + token.to_bytes(2, "big") + bytes([st.PUSH_DATA]) + eui
                        + json.dumps({"rxpk": [rxpk]}).encode(), ("127.0.0.1", port))
            ack = sock.recv(64)
            if ack[:4] != bytes([2]) + token.to_bytes(2, "big") + bytes([st.PUSH_ACK]):
                errors.append(f"hotspot {n} frame {k}: {ack.hex()}")
                return
            acked[n] += 1
    except (OSError, threading.BrokenBarrierError) as e:
        errors.append(f"hotspot {n}: {e!r}")
        together.abort()
    finally:
        sock.close()


def test_eight_hotspots_forwarding_the_same_thousand_uplinks():
    phys = [frame.build(NWK, APP, bytes.fromhex(ADDR)[::-1], f, uplink=True, fport=1, payload=bytes([f & 0xFF]) * 8)
            for f in range(1, FRAMES + 1)]
    got: list[dict] = []
    # a de-duplication window far longer than a starved thread's delay: copies of a frame always
    # meet in one group on a busy machine too (the window is a parameter, not what is measured)
    with Listener({}, port=0, dedup_ms=5000, on_frame=got.append,
                  abp={ADDR: ("70B3D57ED0000009", NWK, APP)}) as ls:
        acked = [0] * HOTSPOTS
        errors: list[str] = []
        together = threading.Barrier(HOTSPOTS, timeout=120)
        threads = [threading.Thread(target=_hotspot, args=(ls.address[1], n, phys, acked, errors, together))
                   for n in range(HOTSPOTS)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while ls.counts["frames"] < FRAMES and not errors:  # the last groups close after their window
            time.sleep(0.05)
            if time.monotonic() - t0 > 600:
                break
        wall = time.monotonic() - t0
        counts = dict(ls.counts)
    assert errors == []
    assert acked == [FRAMES] * HOTSPOTS
    assert counts["datagrams"] == counts["rxpk"] == FRAMES * HOTSPOTS
    assert counts["frames"] == FRAMES and counts["duplicates"] == FRAMES * (HOTSPOTS - 1)
    assert counts["malformed"] == counts["internal_errors"] == 0
    assert [f.get("error") for f in got if "error" in f] == []
    assert [f["fcnt"] for f in got] == list(range(1, FRAMES + 1))
    assert all(f["heard"] == HOTSPOTS for f in got)
    assert all(f["best"] == "AA555A0000000000" for f in got)  # the best SNR: hotspot 0
    print(f"listen load: {FRAMES * HOTSPOTS} datagrams from {HOTSPOTS} hotspots in {wall:.1f} s "
          f"({FRAMES * HOTSPOTS / wall:.0f}/s)")
