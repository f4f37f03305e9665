"""Store-and-forward: the network server is away for 60 s of device time while a node keeps
sending; what the hotspot queued arrives once and in order when the server is back, and what did
not fit its bounded queue is counted, exactly."""

from __future__ import annotations

import itertools
import socket

import pytest
from loraspot.listen.server import Listener
from loraspot.lorawan.joinserver import JoinServer
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import Events, fresh_devices, hotspot_image, node_image, wait

pytestmark = pytest.mark.e2e
SPEED = 10


@pytest.mark.parametrize("queue_size", [16, 3])
def test_backhaul_outage_queues_then_delivers_in_order(tmp_path, make_board, queue_size):
    (eui, key), = fresh_devices(1).items()
    js = JoinServer()
    js.add_device(eui, key)
    frames: list[dict] = []
    with Medium(speed=SPEED) as medium:
        ls = Listener({}, port=0, dedup_ms=20, on_frame=frames.append, join_server=js)
        port = ls.address[1]
        hs = make_board(hotspot_image(tmp_path / "hs.bin", server_port=port, queue_size=queue_size, keepalive=5),
                        speed=SPEED, medium=medium.address, register=False)
        hev = Events(hs.info["url"])
        node = make_board(node_image(tmp_path / "n.bin", eui, key, uplink_interval=10), speed=SPEED,
                          medium=medium.address, register=False, position=(50, 0, 0))
        nev = Events(node.info["url"])
        try:
            assert wait(lambda: any(f.get("type") == "uplink" for f in frames), 30), frames
            ls.close()  # the server goes away for 60 s of device time
            heard = max(f["fcnt"] for f in frames if f.get("type") == "uplink")
            assert wait(lambda: any(b.get("state") == "down" for b in hev.of("backhaul")), 10)
            # the node goes on sending while the server is away: six uplinks
            assert wait(lambda: len([u for u in nev.of("uplink") if u["fcnt"] > heard]) >= 6, 60)
            during = [u["fcnt"] for u in nev.of("uplink") if u["fcnt"] > heard]
            ls = Listener({}, port=port, dedup_ms=20, on_frame=frames.append, join_server=js)
            assert wait(lambda: any(f.get("fcnt") == during[-1] for f in frames), 30), (during, frames[-3:])
            stats = hev.client.request("stats")
        finally:
            ls.close()
            hev.close()
            nev.close()
    ups = [f["fcnt"] for f in frames if f.get("type") == "uplink"]
    assert len(during) >= 5  # uplinks the node sent while the server was away
    assert len(ups) == len(set(ups)) and ups == sorted(ups)  # once each, in order
    lost = [f for f in during if f not in ups]
    if queue_size >= len(during):
        assert lost == [] and stats["dropped"] == {"full": 0, "age": 0, "join": 0}
    else:  # the oldest made room for the newest: exactly those are missing, and counted
        # (at least len(during) - queue_size: an uplink sent just before the server came back may
        # have pushed out one more)
        assert lost == during[: len(lost)] and len(lost) >= len(during) - queue_size
        assert stats["dropped"] == {"full": len(lost), "age": 0, "join": 0}
    up_events = hev.of("backhaul")
    assert [b["state"] for b in up_events][-2:] == ["down", "up"]
    # the delivered ones kept the time they were received: tmst/time of the original reception
    late = [f for f in frames if f.get("fcnt") in during and f["fcnt"] in ups]
    times = [f["gateways"][0]["tmst"] for f in late]
    assert times == sorted(times) and all(b - a >= 9_000_000 for a, b in itertools.pairwise(times))


def test_fallback_server_takes_over_when_the_primary_does_not_answer(tmp_path, make_board):
    (eui, key), = fresh_devices(1).items()
    frames: list[dict] = []
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))  # a primary that never answers (bound, silent)
    with Medium(speed=SPEED) as medium, Listener({eui: key}, port=0, dedup_ms=20, on_frame=frames.append) as ls:
        hs = make_board(hotspot_image(tmp_path / "hs.bin", server_port=dead.getsockname()[1], fallback="127.0.0.1",
                                      fallback_port=ls.address[1], keepalive=2), speed=SPEED, medium=medium.address,
                        register=False)
        hev = Events(hs.info["url"])
        make_board(node_image(tmp_path / "n.bin", eui, key, uplink_interval=10), speed=SPEED, medium=medium.address,
                   register=False, position=(50, 0, 0))
        try:
            assert wait(lambda: sum(f.get("type") == "uplink" for f in frames) >= 2, 40), (frames, hev.of("backhaul"))
        finally:
            hev.close()
            dead.close()
    ups = [b for b in hev.of("backhaul") if b["state"] == "up"]
    assert ups and ups[-1]["server"] == f"127.0.0.1:{ls.address[1]}"
    assert [f["type"] for f in frames][:1] == ["join"] and "error" not in frames[0]
