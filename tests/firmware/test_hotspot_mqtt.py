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
    eq((t.freq, t.power, t.sf, t.bw, t.cr, t.ipol, t.crc, t.imme), (868100000, 14, 9, 125000, 5, True, False, False))
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


