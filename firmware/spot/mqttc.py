# A small MQTT 3.1.1 client for the board (no pip on a board): CONNECT with a will and credentials,
# PUBLISH QoS 0/1, SUBSCRIBE, PINGREQ, optional TLS; incoming packets parsed from one buffer
# allocated once. It knows nothing of what is published: spot.hotspot.mqtt maps the hotspot to
# ChirpStack Gateway Bridge messages over it.
import socket

from micropython import const

try:
    from typing import Any  # noqa: F401 (for the type checker only)
except ImportError:
    pass

_CONNECT = const(0x10)
_CONNACK = const(0x20)
_PUBLISH = const(0x30)
_PUBACK = const(0x40)
_SUBSCRIBE = const(0x82)
_SUBACK = const(0x90)
_PINGREQ = const(0xC0)
_PINGRESP = const(0xD0)
KEEPALIVE_S = const(30)


class MqttError(OSError):
    pass



def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def _remaining(buf, n):
    """MQTT's remaining length n written into buf from index 1 (after the packet type); the end."""
    k = 1
    while True:  # at most 4 bytes
        d = n & 0x7F
        n >>= 7
        buf[k] = d | (0x80 if n else 0)
        k += 1
        if not n:
            return k


class Client:
    """MQTT 3.1.1 over one TCP (or TLS) connection; incoming packets are parsed from a buffer
    allocated once. on_message(topic, payload) gets PUBLISHes of subscribed topics."""

    def __init__(self, host, port, client_id, user="", password=None, tls=False, keepalive=KEEPALIVE_S, clock=None):
        self.clock = clock
        self.host, self.port, self.client_id = host, port, client_id
        self.user, self.password, self.tls, self.keepalive = user, password, tls, keepalive
        self.sock = None
        self.rx = bytearray(1280)  # a DownlinkFrame of two items fits unless their payloads are large
        self.rn = 0
        self.pid = 0
        self.acked = -1  # packet id of the last PUBACK
        self.on_message = None  # type: Any  # (topic bytes, payload memoryview) -> None
        self.last_tx = 0
        self.head = bytearray(5)

    def connect(self, will_topic=None, will_msg=None):
        addr = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0][-1]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(addr)
            if self.tls:
                import ssl

                s = ssl.wrap_socket(s, server_hostname=self.host)  # pyright: ignore[reportAttributeAccessIssue]
            flags = 0x02  # clean session
            body = _str("MQTT") + bytes((4,))
            payload = _str(self.client_id)
            if will_topic:
                flags |= 0x04 | 0x20 | (1 << 3)  # will, retained, QoS 1
                payload += _str(will_topic) + _str(will_msg)
            if self.user:
                flags |= 0x80
                payload += _str(self.user)
                if self.password is not None:
                    flags |= 0x40
                    payload += _str(self.password)
            body += bytes((flags, self.keepalive >> 8, self.keepalive & 0xFF)) + payload
            head = bytearray(5)
            head[0] = _CONNECT
            s.write(bytes(head[: _remaining(head, len(body))]) + body)
            ack = s.read(4)
            if not ack or len(ack) != 4 or ack[0] != _CONNACK:
                raise MqttError("no CONNACK from %s:%d" % (self.host, self.port))
            if ack[3]:
                raise MqttError("broker refused the connection (CONNACK code %d)" % ack[3])
        except BaseException:
            s.close()
            raise
        s.setblocking(False)
        self.sock = s
        self.rn = 0
        self.last_tx = self.clock.ticks_ms() if self.clock else 0

    def close(self):
        if self.sock is not None:
            try:
                self.sock.write(b"\xe0\x00")  # DISCONNECT: the will is not sent
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def drop(self):
        """Close without DISCONNECT (the broker then publishes the will)."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _write(self, data):
        s = self.sock
        if s is None:
            raise MqttError("not connected")
        mv = memoryview(data)
        sent = 0
        while sent < len(mv):
            n = s.write(mv[sent:])
            if n is None:  # the socket buffer is full: a stalled link is an error here
                raise MqttError("send buffer full")
            sent += n
        self.last_tx = self.clock.ticks_ms() if self.clock else 0

    def publish(self, topic, payload, n=-1, retain=False, qos=0):
        """Publish payload[:n]; the packet id with QoS 1 (PUBACK sets self.acked to it)."""
        if isinstance(payload, str):
            payload = payload.encode()
        if n < 0:
            n = len(payload)
        t = topic if isinstance(topic, bytes) else topic.encode()
        rest = 2 + len(t) + n + (2 if qos else 0)
        h = self.head
        h[0] = _PUBLISH | (qos << 1) | (1 if retain else 0)
        self._write(memoryview(h)[: _remaining(h, rest)])
        self._write(bytes((len(t) >> 8, len(t) & 0xFF)))
        self._write(t)
        pid = 0
        if qos:
            self.pid = self.pid % 65535 + 1
            pid = self.pid
            self._write(bytes((pid >> 8, pid & 0xFF)))
        self._write(memoryview(payload)[:n])
        return pid

    def subscribe(self, topic, qos=0):
        self.pid = self.pid % 65535 + 1
        body = bytes((self.pid >> 8, self.pid & 0xFF)) + _str(topic) + bytes((qos,))
        h = self.head
        h[0] = _SUBSCRIBE
        self._write(memoryview(h)[: _remaining(h, len(body))])
        self._write(body)

    def ping(self):
        self._write(bytes((_PINGREQ, 0)))

    def feed(self):
        """Read what arrived and handle every complete packet; False when the connection closed."""
        s = self.sock
        if s is None:
            return False
        free = memoryview(self.rx)[self.rn :]
        if not len(free):  # a packet larger than the buffer: not one this gateway takes
            raise MqttError("incoming packet too large")
        try:
            n = s.readinto(free)
        except OSError:
            return False
        if n is None:
            return True
        if n == 0:
            return False
        self.rn += n
        self._packets()
        return True

    def _packets(self):
        buf = self.rx
        while self.rn >= 2:
            mult, rest, k = 1, 0, 1
            while True:
                if k >= self.rn:
                    return
                b = buf[k]
                rest += (b & 0x7F) * mult
                mult <<= 7
                k += 1
                if not b & 0x80:
                    break
            end = k + rest
            if end > self.rn:
                if end > len(buf):
                    raise MqttError("incoming packet too large")
                return
            kind = buf[0] & 0xF0
            if kind == _PUBACK:
                self.acked = (buf[k] << 8) | buf[k + 1]
            elif kind == _PUBLISH and self.on_message is not None:
                tl = (buf[k] << 8) | buf[k + 1]
                topic = bytes(buf[k + 2 : k + 2 + tl])
                start = k + 2 + tl + (2 if buf[0] & 0x06 else 0)
                self.on_message(topic, memoryview(buf)[start:end])
            # CONNACK, SUBACK and PINGRESP need nothing
            left = self.rn - end
            buf[:left] = buf[end : self.rn]
            self.rn = left
