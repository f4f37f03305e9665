"""The hotspot with the MQTT backhaul through a real Mosquitto broker: ChirpStack Gateway Bridge
JSON (checked by `loraspot listen` against chirpstack-api's message types, strictly), joins
answered with DownlinkFrames (RX1 then RX2 items) and acknowledged item by item, the retained
connection state with its last will, and an outage of the broker that loses no queued uplink."""

from __future__ import annotations

import pytest
from loraspot.errors import DeviceError
from loraspot.listen.server import Listener
from loraspot.lorawan.joinserver import JoinServer
from loraspot.sim.medium import Medium

from tests.broker import Broker
from tests.e2e.hotspot_world import Events, fresh_devices, hotspot_image, node_image, wait

pytestmark = pytest.mark.e2e
SPEED = 10


def _stats_when(hev: Events, ok, timeout: float, step: float = 0.2) -> dict:
    """The hotspot's stats once ok(stats), asked again while it answers no_memory ("retry": its heap
    is short for a moment, as while the broker is away on a busy machine)."""
    got: list[dict] = []

    def once() -> bool:
        try:
            got.append(hev.client.request("stats"))
        except DeviceError as e:
            if e.code != "no_memory":
                raise
            return False
        return ok(got[-1])

    assert wait(once, timeout, step), (got[-1:], hev.of("log"))
    return got[-1]


def test_nodes_join_and_send_through_mqtt(tmp_path, make_board):
    devices = fresh_devices(3)
    js = JoinServer()
    for eui, key in devices.items():
        js.add_device(eui, key)
    frames: list[dict] = []
    broker = Broker(tmp_path)
    try:
        with Medium(speed=SPEED) as medium:
            ls = Listener({}, port=0, dedup_ms=20, on_frame=frames.append, mqtt=broker.url, join_server=js,
                          udp=False)
            try:
                hs = make_board(hotspot_image(tmp_path / "hs.bin", backhaul="mqtt", mqtt_port=broker.port,
                                              gw_stat_interval=10), speed=SPEED, medium=medium.address,
                                register=False)
                hev = Events(hs.info["url"])
                _stats_when(hev, lambda s: s["backhaul"] == "up", 20, 0.5)
                nodes = []
                for i, (eui, key) in enumerate(devices.items()):
                    nodes.append(make_board(node_image(tmp_path / f"n{i}.bin", eui, key, confirm_every=2,
                                                       uplink_interval=30),
                                            speed=SPEED, medium=medium.address, register=False,
                                            position=(100.0 * (i + 1), 0, 0), hardware={"seed": i, "bme280": {}}))
                    # the next node starts once this one has joined: the joins do not collide
                    assert wait(lambda eui=eui: any(f.get("type") == "join" and f.get("dev_eui") == eui
                                                    and "error" not in f for f in frames), 60), frames

                def ups():
                    return [f for f in frames if f.get("type") == "uplink" and "error" not in f]

                assert wait(lambda: {f["dev_eui"] for f in ups()} == set(devices) and len(ups()) >= 6, 60), frames
                # the broker goes away while the hotspot queues a few uplinks, then comes back on
                # the same port
                heard = {e: max(f["fcnt"] for f in ups() if f["dev_eui"] == e) for e in devices}
                broker.stop()
                assert wait(lambda: any(b["state"] == "down" for b in hev.of("backhaul")), 20)
                _stats_when(hev, lambda s: s["queued"] >= 4, 60)
                broker.start()  # the listener's paho client reconnects by itself
                assert wait(lambda: [b["state"] for b in hev.of("backhaul")][-1:] == ["up"], 30), hev.of("backhaul")
                assert wait(lambda: all(max(f["fcnt"] for f in ups() if f["dev_eui"] == e) >= heard[e] + 2
                                        for e in devices), 60)
                for n in nodes:  # quiet air: then what the hotspot heard can be compared with what arrived
                    n.stop()
                stats = _stats_when(hev, lambda s: s["queued"] == 0, 30)
                # what the hotspot took off its queue has reached the listener
                dropped = sum(stats["dropped"].values())
                assert wait(lambda: ls.counts["rxpk"] + dropped >= stats["rx"], 10), (ls.counts, stats)
                hev.close()
            finally:
                ls.close()
    finally:
        broker.stop()
    assert ls.counts["malformed"] == 0, ls.errors
    topics = {t.split("/", 3)[3] for t, _ in ls.mqtt.messages}
    assert {"event/up", "event/stats", "event/ack", "state/conn"} <= topics
    conn = [m for t, m in ls.mqtt.messages if t.endswith("state/conn")]
    assert conn[-1]["state"] == "ONLINE"
    assert len(ls.gateways) == 1
    acks = [m for t, m in ls.mqtt.messages if t.endswith("event/ack")]
    # items tried in order until one is queued, the rest IGNORED: [OK, IGNORED] when RX1 was taken,
    # [TOO_LATE, OK] when RX1 was missed (a sped-up world on a busy machine) and RX2 taken instead
    errors = {"TOO_LATE", "TOO_EARLY", "COLLISION_PACKET", "TX_FREQ", "TX_POWER"}
    for a in acks:
        st = [i["status"] for i in a["items"]]
        rx1_taken = st == ["OK", "IGNORED"]
        assert rx1_taken or (len(st) == 2 and st[0] in errors and st[1] in errors | {"OK"}), a
    # the three Join-Accepts went out; downlinks answering uplinks that waited out the outage are
    # refused TOO_LATE in both windows, as they must be
    assert sum("OK" in [i["status"] for i in a["items"]] for a in acks) >= len(devices)
    joins = [f for f in frames if f["type"] == "join" and "error" not in f]
    assert {j["dev_eui"] for j in joins} == set(devices)
    for e in devices:  # once each and in order, across the broker's outage
        fc = [f["fcnt"] for f in frames if f.get("dev_eui") == e and f.get("type") == "uplink" and "error" not in f]
        assert fc == sorted(set(fc)), (e, fc)
        # a copy that came after a later count is refused by the server and named as such (listen
        # names the device of a refused frame since it tells late copies from forgeries)
        refused = [f for f in frames if f.get("dev_eui") == e and f.get("type") == "uplink" and "error" in f]
        assert all("a late or replayed frame" in f["error"] for f in refused), refused
    # everything the hotspot heard reached the listener or was dropped with its reason (a frame lost
    # on the air, e.g. while the hotspot was transmitting, never reached the hotspot), none twice
    assert ls.counts["rxpk"] + sum(stats["dropped"].values()) == stats["rx"], str(stats)
    assert ls.counts["duplicates"] == 0 and stats["down_bad"] == 0, (ls.counts, stats)
    # The outage lasts as long as the broker takes to come back and the hotspot's back-off to try
    # again, in wall time: a busy machine stretches it in device time (10 s a second here), past
    # what the queue of uplinks holds. The oldest then make room, counted as "full", and a step
    # that finds no free heap block is counted (nomem) and tried again (docs/hotspot.md): neither
    # loses a frame unsaid, which the account above shows. Nothing is ever dropped for age or as
    # a join here.
    assert stats["dropped"]["age"] == 0 and stats["dropped"]["join"] == 0, stats
