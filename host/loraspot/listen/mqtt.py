"""The MQTT side of `loraspot listen`: hotspots that forward in ChirpStack Gateway Bridge JSON
through a broker. Each message is parsed strictly with chirpstack-api's own message types (an
unknown or mistyped field is a malformed message, counted); downlinks go out as DownlinkFrames
with RX1 then RX2 items timed by a delay after the uplink's context."""

from __future__ import annotations

import base64
import json
import os
from collections import deque
from urllib.parse import urlparse

import paho.mqtt.client as paho
from chirpstack_api import gw as gwpb
from google.protobuf import json_format
from paho.mqtt.enums import CallbackAPIVersion

from loraspot.errors import LoraspotError
from loraspot.listen.gateways import KEEP_FRAMES, Gateway, Network


class MqttListenError(LoraspotError):
    exit_code = 2


def parse_url(url: str) -> tuple[str, int]:
    u = urlparse(url)
    if u.scheme not in ("mqtt", "tcp") or not u.hostname:
        raise MqttListenError(f"MQTT broker URL must be mqtt://HOST[:PORT], got {url!r}")
    return u.hostname, u.port or 1883


def _name(enum, value: int) -> str:
    """An enum value's name; "UNKNOWN" for a number the schema does not define (proto3 enums are
    open: JSON may carry any), so made-up numbers do not each open a counter of their own."""
    return enum.Name(value) if value in enum.values() else "UNKNOWN"


class MqttSide:
    def __init__(self, listener: Network, url: str, prefix: str):
        self.ls = listener
        self.prefix = prefix
        # (topic, JSON) of the newest messages received, for checks; bounded like the server's frames
        self.messages: deque[tuple[str, dict]] = deque(maxlen=KEEP_FRAMES)
        self.stats: dict[str, dict] = {}
        self._ids = 0
        host, port = parse_url(url)
        # a persistent session: what hotspots publish while this client is away (a broker restart
        # included, when the broker keeps sessions) is delivered when it is back
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"loraspot-listen-{os.getpid()}",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.05, 1)  # pyright: ignore[reportArgumentType] (paho takes seconds as a float)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        try:
            self.client.connect(host, port, keepalive=30)
        except OSError as e:
            raise MqttListenError(f"cannot connect to the MQTT broker at {host}:{port}: {e}") from None
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties=None) -> None:
        client.subscribe(f"{self.prefix}/gateway/+/event/+", qos=1)
        client.subscribe(f"{self.prefix}/gateway/+/state/+", qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        # paho's network thread calls this: an exception would end the thread, and with it every
        # message after; the server's guard counts it as an internal error and goes on
        with self.ls.lock:
            self.ls.guarded(self._message, msg)

    def _message(self, msg) -> None:
        parts = msg.topic.split("/")
        if len(parts) != 5:
            return
        gid, kind, name = parts[2], parts[3], parts[4]
        types = {("event", "up"): gwpb.UplinkFrame, ("event", "stats"): gwpb.GatewayStats,
                 ("event", "ack"): gwpb.DownlinkTxAck, ("state", "conn"): gwpb.ConnState}
        t = types.get((kind, name))
        ls = self.ls
        ls.datagram()
        if t is None:
            return
        try:
            body = json.loads(msg.payload)
            # strict: unknown fields and wrong types fail; the fields are read from the message
            # (a field left out or null reads as its default, as in ChirpStack)
            message = json_format.Parse(msg.payload, t())
        except (ValueError, RecursionError, json_format.ParseError) as e:
            ls.malformed(f"{msg.topic}: {e}")
            return
        self.messages.append((msg.topic, body))
        gw = ls.gateway(gid, "mqtt")
        if name == "conn":
            gw.conn = _name(gwpb.ConnState.State, message.state)  # on the gateway: forgotten with it
        elif name == "stats":
            gw.last_stat = body
        elif name == "ack":
            for item in message.items:
                st = _name(gwpb.TxAckStatus, item.status)
                gw.tx_acks[st] = gw.tx_acks.get(st, 0) + 1
        elif name == "up":
            gw.pushes += 1
            self._up(gw, message, msg.topic)

    def _up(self, gw: Gateway, up, topic: str) -> None:
        ls = self.ls
        rx, tx = up.rx_info, up.tx_info
        if tx.modulation.WhichOneof("parameters") != "lora":
            ls.malformed(f"{topic}: not a LoRa uplink (modulation {tx.modulation.WhichOneof('parameters')})")
            return
        lora = tx.modulation.lora
        ctx = rx.context
        code = _name(gwpb.CodeRate, lora.code_rate)
        p = {"tmst": int.from_bytes(ctx, "big") if len(ctx) == 4 else 0, "freq": tx.frequency / 1e6,
             "datr": f"SF{lora.spreading_factor}BW{lora.bandwidth // 1000}",
             "codr": code[3:].replace("_", "/") if code.startswith("CR_4_") else "4/5", "rssi": rx.rssi,
             "lsnr": rx.snr, "chan": rx.channel, "time": rx.gw_time.ToJsonString() if rx.HasField("gw_time") else None,
             "stat": 1 if rx.crc_status == gwpb.CRCStatus.CRC_OK else -1,
             "context": base64.b64encode(ctx).decode()}
        ls.heard(gw, bytes(up.phy_payload), p)

    def send(self, gw: Gateway, p: dict, phy: bytes, delay_us: int) -> dict:
        items = []
        # RX1 by the region's rules for the uplink's channel, then RX2 (the region's) a second later
        for extra, (freq, datr) in ((0, self.ls.rx1(p)), (1_000_000, self.ls.rx2())):
            sf, bw = datr[2:].split("BW")
            lora = {"bandwidth": int(bw) * 1000, "spreadingFactor": int(sf), "codeRate": "CR_4_5",
                    "polarizationInversion": True}
            d = delay_us + extra
            items.append({"phyPayload": base64.b64encode(phy).decode(),
                          "txInfo": {"frequency": freq, "power": self.ls.power,
                                     "modulation": {"lora": lora},
                                     "timing": {"delay": {"delay": f"{d // 1_000_000}.{d % 1_000_000:06d}s"}},
                                     "context": p["context"]}})
        lora1 = items[0]["txInfo"]["modulation"]["lora"]
        self._ids += 1
        frame = {"downlinkId": self._ids, "gatewayId": gw.eui.lower(), "items": items}
        json_format.ParseDict(frame, gwpb.DownlinkFrame())  # what we send is valid too
        self.client.publish(f"{self.prefix}/gateway/{gw.eui.lower()}/command/down", json.dumps(frame), qos=0)
        self.ls.downlink_sent()
        return {"sent": True, "gateway": gw.eui, "downlink_id": self._ids, "size": len(phy), "items": len(items),
                "tmst": (p["tmst"] + delay_us) & 0xFFFFFFFF, "freq": items[0]["txInfo"]["frequency"],
                "datr": "SF{spreadingFactor}BW{bw}".format(bw=lora1["bandwidth"] // 1000, **lora1)}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
