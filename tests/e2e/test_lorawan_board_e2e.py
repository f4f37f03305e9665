"""OTAA join and a confirmed uplink from a whole virtual board (flash image with the firmware as
bytecode, board profile, secrets store, vboot's medium settings) through the RF medium and the
test gateway to the host join server, at 10x speed."""

from __future__ import annotations

import json

import pytest
from loraspot.lorawan.joinserver import JoinServer
from loraspot.sim.medium import Medium

from tests.e2e.conftest import bytecode_image
from tests.host.lorawan_gateway import Gateway

pytestmark = pytest.mark.e2e
SPEED = 10
DEV_EUI = "70B3D57ED000BEEF"
APPKEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")

NODE_MAIN = b"""
import asyncio, io, json, sys, time
out = {"joined": False}
try:
    # the order matters on the 64-bit port's 112K heap: the board profile is checked (its schema
    # loaded, then dropped) first, the radio's buffers are made while the heap is still in one
    # piece, and the LoRaWAN code loads after them
    import gc
    from spot.board import Board
    board = Board.load()
    clock = board.clock()
    radio = board.radio(clock)
    gc.collect()
    from spot.lorawan import region
    from spot.lorawan.stack import LoRaWAN
    from spot.lorawan.store import Counters
    gc.collect()
    node = LoRaWAN(region.get("EU868"), radio, clock, Counters().load(), board.secrets(), "%s")
except Exception as e:
    buf = io.StringIO()
    sys.print_exception(e, buf)
    out["error"] = buf.getvalue()

async def main():
    for _ in range(3):
        if await node.join(dr=5):
            out["joined"] = True
            break
    gc.collect()
    out["heap_free_after_join"] = gc.mem_free()
    out["join_code_loaded"] = "spot.lorawan.join" in sys.modules
    if out["joined"]:
        r = await node.send(2, b"board-up", confirmed=True)
        gc.collect()
        out["heap_free_after_uplink"] = gc.mem_free()
        out.update(fcnt=r.fcnt, ack=r.ack, window=r.window)
    out["rejects"] = node.rejects

import gc
gc.collect()
out["heap_free_before_join"] = gc.mem_free()
if "error" not in out:
    try:
        asyncio.run(main())
    except Exception as e:
        out["free_at_error"] = gc.mem_free()
        gc.collect()
        out["free_after_gc"] = gc.mem_free()
        buf = io.StringIO()
        sys.print_exception(e, buf)
        out["error"] = buf.getvalue()
while True:
    print("RESULT " + json.dumps(out))
    time.sleep(0.2)
""" % DEV_EUI.encode()


def test_whole_virtual_board_joins_and_gets_its_ack(tmp_path, make_board):
    flash = bytecode_image(
        tmp_path / "node.bin", NODE_MAIN, {"secrets.json": json.dumps({"app_key": APPKEY.hex()}).encode()}
    )
    js = JoinServer()
    js.add_device(DEV_EUI, APPKEY)
    with Medium(speed=SPEED) as medium:
        gw = Gateway(medium, js, SPEED)
        try:
            h = make_board(flash, speed=SPEED, medium=medium.address, position=(250.0, 0.0, 0.0), register=False)
            result = h.read_result()
        finally:
            gw.close()
    assert result["joined"] is True and result["ack"] is True and result["fcnt"] == 0, result
    assert [e["payload"] for e in gw.log if "uplink" in e] == [b"board-up"]
    assert gw.errors == []
    assert result["join_code_loaded"] is False, result  # dropped once joined
    assert result["heap_free_after_uplink"] > 4096, result  # the margin left on the 64-bit port
    assert not [s for s in h.status if s["event"] == "heapshort"]
