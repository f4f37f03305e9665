# The hotspot's MQTT client: packets parsed from a buffer whatever the TCP segments, PUBACK ids,
# a packet larger than any downlink refused; ChirpStack DownlinkFrame items to txpk with the delay
# added to the uplink's context (across the 32-bit wrap), and bad items refused.
import json

from fwtest import eq, raises
from spot import mqttc
from spot.hotspot import mqtt


def test_mqtt_client_parses_packets_split_and_joined():
    c = mqttc.Client("h", 1, "id")
    got = []
    c.on_message = lambda topic, payload: got.append((topic, bytes(payload)))

    class Sock:
        def __init__(self, chunks):
            self.chunks = chunks

        def readinto(self, buf):
            if not self.chunks:
                return None
            d = self.chunks.pop(0)
            buf[: len(d)] = d
            return len(d)

    pub = b"\x30" + bytes((2 + 5 + 4,)) + b"\x00\x05a/b/c" + b"data"
    puback = b"\x40\x02\x12\x34"
    big = b"\x31\xc8\x01" + b"\x00\x01t" + bytes(197)  # remaining length 200 (two bytes)
    c.sock = Sock([pub[:3], pub[3:] + puback[:1], puback[1:] + big])
    for _ in range(3):
        eq(c.feed(), True)
    eq(got, [(b"a/b/c", b"data"), (b"t", bytes(197))])
    eq(c.acked, 0x1234)
    eq(c.rn, 0)
    c.sock = Sock([b"\x30\xff\xff\x03"])  # 65535 bytes: larger than any downlink
    raises(mqttc.MqttError, lambda: [c.feed() for _ in range(2)])


def test_chirpstack_downlink_items():
    item = {"phyPayload": "YAECAwQAAAAB", "txInfo": {"frequency": 868100000, "power": 14, "modulation": {"lora": {
        "bandwidth": 125000, "spreadingFactor": 9, "codeRate": "CR_4_5", "polarizationInversion": True}},
        "timing": {"delay": {"delay": "1.500s"}}, "context": "/////w=="}}
    t = mqtt.txpk_of(item)
    eq((t.freq, t.power, t.sf, t.bw, t.cr, t.ipol, t.crc, t.imme), (868100000, 14, 9, 125000, 5, True, True, False))
    eq(t.tmst, 1499999)  # 0xFFFFFFFF + 1.5 s wraps
    eq(len(t.data), 9)
    item["txInfo"]["timing"] = {"immediately": {}}
    eq(mqtt.txpk_of(item).imme, True)
    bad = json.loads(json.dumps(item))
    bad["txInfo"]["timing"] = {"delay": {"delay": "1s"}}
    del bad["txInfo"]["context"]
    raises(ValueError, mqtt.txpk_of, bad)
    bad["txInfo"]["context"] = "AAAAAA=="
    bad["txInfo"]["modulation"]["lora"]["codeRate"] = "CR_LI_4_5"
    raises(ValueError, mqtt.txpk_of, bad)
    del bad["txInfo"]["modulation"]
    raises(KeyError, mqtt.txpk_of, bad)
    bad = json.loads(json.dumps(item))
    bad["phyPayload"] = "YAECAwQAAAAB!!!!"  # characters outside the alphabet are not skipped
    raises(ValueError, mqtt.txpk_of, bad)
    bad = json.loads(json.dumps(item))
    bad["txInfo"]["timing"] = {"delay": {"delay": "1s"}}
    bad["txInfo"]["context"] = "/////w=!"
    raises(ValueError, mqtt.txpk_of, bad)
    eq(mqtt._delay_us("2s"), 2000000)
    raises(ValueError, mqtt._delay_us, "2")




def _broker_pair():
    """A connected pair of non-blocking TCP sockets on loopback: (the hotspot's end, the broker's)."""
    import os
    import socket

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    while True:  # the unix port's socket has no getsockname(): a free port found by trying
        addr = socket.getaddrinfo("127.0.0.1", 20000 + int.from_bytes(os.urandom(2), "big") % 40000)[0][-1]
        try:
            srv.bind(addr)
            break
        except OSError:
            pass
    srv.listen(1)
    cs = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    cs.connect(addr)
    peer = srv.accept()[0]
    srv.close()
    cs.setblocking(False)
    peer.setblocking(False)
    return cs, peer


class Broker:
    """The broker's end of the pair: whole MQTT packets in and out."""

    def __init__(self, sock):
        self.sock = sock
        self.got = bytearray()

    def publish(self, topic, payload):
        body = bytes((len(topic) >> 8, len(topic) & 0xFF)) + topic + payload
        head = bytearray(5)
        head[0] = 0x30
        self.sock.write(bytes(head[: mqttc._remaining(head, len(body))]) + body)

    async def packet(self):
        """(type byte, body) of the next packet the hotspot sent."""
        import asyncio

        while True:
            g = self.got
            if len(g) >= 2:
                n, mult, k = 0, 1, 1
                while k < len(g):
                    n += (g[k] & 0x7F) * mult
                    mult <<= 7
                    k += 1
                    if not g[k - 1] & 0x80:
                        break
                if not g[k - 1] & 0x80 and len(g) >= k + n:
                    kind, body = g[0], bytes(g[k : k + n])
                    self.got = g[k + n :]
                    return kind, body
            d = self.sock.read(512)
            if d:
                g.extend(d)
            else:
                await asyncio.sleep_ms(1)


def _topic(body):
    n = (body[0] << 8) | body[1]
    return body[2 : 2 + n], body[2 + n :]


def _hotspot_over_pair():
    from hotspot_fakes import FakeConsole, FakeRadio
    from spot.clock import Clock
    from spot.hotspot.core import Hotspot

    hs = Hotspot(FakeRadio(), Clock(), FakeConsole(), 868100000, 7, (863000000, 870000000), queue_size=4)
    m = mqtt.ChirpStackMqtt(hs, b"\x01" * 8, "127.0.0.1", 1, prefix="eu868")
    m.client.sock, peer = _broker_pair()
    hs.link(True, "mqtt", m.server)
    return hs, m, Broker(peer)


def test_backhaul_waits_on_the_socket_and_the_up_flag():
    # The sender sleeps until a packet is queued, the reader until the broker sends something: an
    # idle backhaul reads nothing; a PUBACK takes the uplink off the backlog; a downlink is answered
    # on event/ack at once; a connection the broker closes takes the link down.
    import asyncio

    from fwtest import run_fresh
    from hotspot_fakes import _packet

    hs, m, broker = _hotspot_over_pair()
    c = m.client
    reads = [0]
    feed = c.feed

    def counted():
        reads[0] += 1
        return feed()

    c.feed = counted
    base = b"eu868/gateway/0101010101010101/"

    async def scenario():
        task = asyncio.create_task(m.run())
        await asyncio.sleep_ms(50)
        eq(reads[0], 0, "an idle backhaul reads nothing")
        hs.received(_packet(b"\x40" + bytes(11)))
        kind, body = await broker.packet()
        topic, rest = _topic(body)
        eq((kind, topic), (0x32, base + b"event/up"))  # PUBLISH, QoS 1
        eq(json.loads(rest[2:])["phyPayload"], "QAAAAAAAAAAAAAAA")
        eq(len(hs.backlog), 1, "kept until its PUBACK")
        broker.sock.write(b"\x40\x02" + rest[:2])
        while len(hs.backlog):
            await asyncio.sleep_ms(1)
        eq((hs.stats["forwarded"], hs.stats["up_acked"]), (1, 1))
        n = reads[0]
        await asyncio.sleep_ms(50)
        eq(reads[0], n, "nothing read while the broker is quiet")
        down = {"downlinkId": 7, "items": [{"phyPayload": "YAECAwQAAAAB", "txInfo": {
            "frequency": 868100000, "power": 14, "modulation": {"lora": {
                "bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5", "polarizationInversion": True}},
            "timing": {"immediately": {}}}}]}
        broker.publish(base + b"command/down", json.dumps(down).encode())
        kind, body = await broker.packet()
        topic, rest = _topic(body)
        eq((kind, topic), (0x30, base + b"event/ack"))
        ack = json.loads(rest)
        eq((ack["downlinkId"], [i["status"] for i in ack["items"]]), (7, ["OK"]))
        eq(hs.stats["down"], 1)
        broker.sock.close()  # the broker goes away: the reader sees the end and the link goes down
        while hs.backhaul != "down":
            await asyncio.sleep_ms(1)
        eq((c.sock, m.rtask), (None, None))
        task.cancel()

    run_fresh(scenario())


def test_overdue_puback_takes_the_link_down():
    hs, m, broker = _hotspot_over_pair()
    m.pending, m.sent_ms = 5, 1000
    m.step(1000 + mqtt.ACK_TIMEOUT_MS)
    eq((hs.backhaul, m.client.sock is None), ("up", False), "not overdue yet")
    m.step(1000 + mqtt.ACK_TIMEOUT_MS + 1)
    eq((hs.backhaul, m.client.sock), ("down", None))
    broker.sock.close()
