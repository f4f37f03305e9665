"""The host's parsers under `make fuzz` (bench/fuzz.py), in CPython with the same seeded generator
as the firmware's targets (tests/firmware/fuzz_targets.py): what gateways send `loraspot listen`
(Semtech UDP datagrams, ChirpStack Gateway Bridge messages over MQTT), recordings `loraspot report`
reads (JSON lines and SQLite), inventory files, vendor EUI lists, MicroPython images, keys files
and the console frames a board sends the host.

A server target (listen's UDP and MQTT sides) may raise nothing: a gateway's message is counted as
malformed or handled. A file target may raise only what the CLI prints as a one-line error
(LoraspotError, OSError, UnicodeDecodeError, sqlite3.Error). Anything else is a crash, reported
with its input. Memory is followed as CPython's allocated blocks (sys.getallocatedblocks) after a
collection, every 10,000 inputs."""

from __future__ import annotations

import base64
import codecs
import gc
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))
sys.path.insert(0, str(ROOT / "tests" / "firmware"))

from fuzz_targets import Rng, mutate  # noqa: E402  (the generator the firmware's targets use)
from loraspot.errors import LoraspotError  # noqa: E402

# what the CLI turns into a one-line error (loraspot/cli/main.py): a file target may raise these
FILE_ERRORS = (LoraspotError, OSError, UnicodeDecodeError, sqlite3.Error)

DEV = "70B3D57ED0001234"
APPKEY = bytes(range(16))
ABP = ("26011BDA", bytes(range(16, 32)), bytes(range(32, 48)))  # DevAddr, NwkSKey, AppSKey


def _frames() -> list[bytes]:
    """LoRaWAN frames a hotspot hears: Join-Requests of a known device, data uplinks of a known ABP
    device (unconfirmed, confirmed, with MAC commands and Cayenne LPP), and an unknown device's."""
    from loraspot.lorawan import crypto, frame

    out = []
    for nonce in (1, 2, 700):
        body = b"\x00" + bytes(8) + bytes.fromhex(DEV)[::-1] + nonce.to_bytes(2, "little")
        out.append(body + crypto.join_mic(APPKEY, body))
    addr = bytes.fromhex(ABP[0])[::-1]
    lpp_payload = bytes.fromhex("0167011003687f0402000a")
    for fcnt, kw in ((1, {"fport": 1, "payload": lpp_payload}), (2, {"fport": 2, "payload": b"\xff" * 5,
                                                                     "confirmed": True}),
                     (3, {"fopts": b"\x02", "fport": 1, "payload": lpp_payload, "adr": True}),
                     (4, {"fport": 0, "payload": b"\x03\x07"})):
        out.append(frame.build(ABP[1], ABP[2], addr, fcnt, uplink=True, **kw))
    out.append(frame.build(bytes(16), bytes(16), b"\x01\x02\x03\x04", 9, uplink=True, fport=1, payload=b"x"))
    return out


def _rand_value(rng: Rng) -> object:
    """A JSON value of any type, some of them extreme."""
    return rng.pick((0, -1, 1 << 40, 1.5, -1e308, 1e308, "", "x" * rng.below(40), None, True, [], {}, [1, "a"],
                     {"a": 1}, "SF7BW125", "4/5", 868.1, "AAAA", 255))


def _mutate_obj(rng: Rng, obj: object, depth: int = 0) -> object:
    """The same JSON document with a field changed, removed or added somewhere in it."""
    if isinstance(obj, dict) and obj:
        obj = dict(obj)
        key = rng.pick(sorted(obj))
        op = rng.below(4)
        if op == 0:
            obj[key] = _rand_value(rng)
        elif op == 1:
            del obj[key]
        elif op == 2 and depth < 4:
            obj[key] = _mutate_obj(rng, obj[key], depth + 1)
        else:
            obj[rng.pick(("x", "data", "size", "rssi", key + "2"))] = _rand_value(rng)
        return obj
    if isinstance(obj, list) and obj:
        obj = list(obj)
        i = rng.below(len(obj))
        op = rng.below(3)
        if op == 0:
            obj[i] = _mutate_obj(rng, obj[i], depth + 1)
        elif op == 1:
            obj.append(obj[i])
        else:
            del obj[i]
        return obj
    return _rand_value(rng)


class _Sock:
    """A socket that only counts what is sent (the server's answers)."""

    def __init__(self) -> None:
        self.sent = 0

    def sendto(self, data: bytes, addr: object) -> None:
        self.sent += 1


def _listener(keys: dict):
    from loraspot.listen.server import Listener

    ls = Listener(keys, port=0, udp=False, dedup_ms=0, abp={ABP[0]: (DEV[:-1] + "9", ABP[1], ABP[2])})
    # the gateway table holds 1,000 (each made-up EUI a new one, the oldest forgotten) and the
    # newest frames and errors kept for a look 1,000 and 200: 16 each here, so they are full
    # within the warm-up and the drift measured after it is what nothing bounds (full windows of
    # messages of random sizes also swing by hundreds of blocks, hiding a slope)
    from collections import deque

    ls.keep_gateways = 16
    ls.frames, ls.errors = deque(maxlen=16), deque(maxlen=16)
    _BEFORE_SAMPLE.append(ls.frames.clear)  # bounded windows emptied before each sample: their
    _BEFORE_SAMPLE.append(ls.errors.clear)  # random contents are noise on the slope, not a leak
    ls._stop.set()  # the harness feeds it; its socket thread stops
    ls._thread.join(5)
    ls.sock.close()
    ls.sock = _Sock()
    return ls


def _drain(ls) -> None:
    """Handle every frame whose de-duplication window has closed, unguarded: an exception here
    is a crash (the server's guard would only count it as an internal error)."""
    for phy in list(ls._groups):
        ls._frame(ls._groups.pop(phy))


def _rxpk(rng: Rng, phy: bytes) -> dict:
    return {"tmst": rng.u32(), "chan": rng.below(8), "rfch": 0, "freq": 868.1 + 0.2 * rng.below(3), "stat": 1,
            "modu": "LORA", "datr": "SF%dBW125" % (7 + rng.below(6)), "codr": "4/5", "rssi": -30 - rng.below(100),
            "lsnr": rng.below(20) - 10.0, "size": len(phy), "data": base64.b64encode(phy).decode()}


def _semtech_server():
    ls = _listener({DEV: APPKEY})
    frames = _frames()
    eui = bytes.fromhex("AA555A0000000101")

    def gen(rng: Rng) -> bytes:
        token = rng.bytes(2)
        kind = rng.below(8)
        if kind == 0:
            return b"\x02" + token + b"\x02" + eui  # PULL_DATA
        if kind == 1:
            body: object = {"txpk_ack": {"error": rng.pick(("NONE", "TOO_LATE", "TX_FREQ"))}}
            ident = 5
        else:
            phy = rng.pick(frames)
            if rng.below(2):
                phy = mutate(rng, phy)
            body = {"rxpk": [_rxpk(rng, phy) for _ in range(1 + rng.below(2))]}
            if not rng.below(4):
                body["stat"] = {"time": "2026-12-05 10:00:00 GMT", "rxnb": 1, "rxok": 1, "rxfw": 1, "ackr": 100.0,
                                "dwnb": 0, "txnb": 0}
            ident = 0
        if rng.below(3) == 0:
            body = _mutate_obj(rng, body)
        data = b"\x02" + token + bytes((ident,)) + eui + json.dumps(body).encode()
        return mutate(rng, data) if rng.below(5) == 0 else data

    def run(data: bytes) -> None:
        ls._datagram(data, ("127.0.0.1", 1700))
        for g in ls._groups.values():
            g.due = 0
        _drain(ls)

    return gen, run, ()


class _Msg:
    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


class _Client:
    def __init__(self) -> None:
        self.published = 0

    def publish(self, topic: str, payload: str, qos: int = 0) -> None:
        self.published += 1


def _listen_mqtt():
    from collections import deque

    from loraspot.listen.mqtt import MqttSide

    ls = _listener({DEV: APPKEY})
    side = MqttSide.__new__(MqttSide)  # its broker connection aside: the harness delivers the messages
    side.ls, side.prefix, side.messages, side.stats, side._ids = ls, "eu868", deque(maxlen=16), {}, 0
    side.client = _Client()
    _BEFORE_SAMPLE.append(side.messages.clear)
    ls.mqtt = side
    frames = _frames()
    gid = "aa555a0000000101"

    def up(rng: Rng) -> dict:
        phy = rng.pick(frames)
        if rng.below(2):
            phy = mutate(rng, phy)
        return {"phyPayload": base64.b64encode(phy).decode(),
                "txInfo": {"frequency": 868100000, "modulation": {"lora": {
                    "bandwidth": 125000, "spreadingFactor": 7 + rng.below(6), "codeRate": "CR_4_5"}}},
                "rxInfo": {"gatewayId": gid, "uplinkId": rng.u32(), "rssi": -40 - rng.below(80), "snr": 5.5,
                           "channel": rng.below(8), "context": base64.b64encode(rng.bytes(4)).decode(),
                           "crcStatus": "CRC_OK"}}

    def gen(rng: Rng) -> bytes:
        kind = rng.pick(("event/up", "event/up", "event/up", "event/stats", "event/ack", "state/conn", "event/x"))
        body: object
        if kind == "event/up":
            body = up(rng)
        elif kind == "event/stats":
            body = {"gatewayId": gid, "rxPacketsReceived": rng.below(100), "txPacketsEmitted": 1}
        elif kind == "event/ack":
            body = {"gatewayId": gid, "downlinkId": rng.u32(), "items": [{"status": "OK"}]}
        else:
            body = {"gatewayId": gid, "state": rng.pick(("ONLINE", "OFFLINE"))}
        if rng.below(3) == 0:
            body = _mutate_obj(rng, body)
        data = json.dumps(body).encode()
        if rng.below(5) == 0:
            data = mutate(rng, data)
        topic = "eu868/gateway/%s/%s" % (gid, kind)
        return topic.encode() + b"\n" + data

    def run(data: bytes) -> None:
        topic, _, payload = data.partition(b"\n")
        side._message(_Msg(topic.decode(errors="replace"), payload))  # unguarded: a crash shows
        for g in ls._groups.values():
            g.due = 0
        _drain(ls)

    return gen, run, ()


def _records() -> list[dict]:
    t = 1_764_900_000.0
    return [
        {"device": "tty0", "boot": "b1", "port": "/dev/ttyUSB0", "host_time": t, "ev": "hello", "seq": -1, "t": 0,
         "data": {"board": "ttgo-lora32-v21", "role": "hotspot", "name": "roof"}},
        {"device": "tty0", "boot": "b1", "port": None, "host_time": t + 1, "ev": "rx", "seq": 1, "t": 1000,
         "data": {"rssi": -80, "snr": 7.5, "size": 23}},
        {"device": "tty0", "boot": "b1", "port": None, "host_time": t + 2, "ev": "stats", "seq": 2, "t": 2000,
         "data": {"heap_free": 40000}},
        {"device": "tty1", "boot": "b2", "port": None, "host_time": t + 3, "ev": "uplink", "seq": 5, "t": 3000,
         "data": {"airtime_ms": 61, "fcnt": 4}},
        {"device": "tty1", "boot": "b2", "port": None, "host_time": t + 4, "ev": "reading", "seq": 6, "t": 4000,
         "data": {"sensor": "gps", "values": [52.1, 5.1, 3.0]}},
        {"device": "tty1", "boot": "b2", "port": None, "host_time": t + 5, "ev": "downlink", "seq": 7, "t": 5000,
         "data": {"rssi": -90, "snr": -3.0}},
        {"device": "tty1", "boot": "b2", "port": None, "host_time": t + 6, "ev": "fault", "seq": 8, "t": 6000,
         "data": {"error": "radio"}},
        {"device": "tty1", "boot": "b2", "port": None, "host_time": t + 7, "ev": "boot", "seq": 0, "t": 0,
         "data": {"boot": "b3", "board": "heltec-v3"}},
    ]


_TMP: list[Path] = []  # the run's scratch folder (run() makes and removes it)
_BEFORE_SAMPLE: list = []  # what a target empties before each sample of the heap (bounded windows)


def _tmp(name: str) -> Path:
    return _TMP[-1] / name


def _recording():
    from loraspot.monitor import report

    base = _records()
    path = _tmp("run.jsonl")

    def gen(rng: Rng) -> bytes:
        lines = []
        for _ in range(1 + rng.below(6)):
            r = rng.pick(base)
            if rng.below(2):
                r = _mutate_obj(rng, r)
            lines.append(json.dumps(r).encode())
        data = b"\n".join(lines) + b"\n"
        return mutate(rng, data) if rng.below(6) == 0 else data

    def run(data: bytes) -> None:
        path.write_bytes(data)
        report.analyse(report.load(path))

    return gen, run, FILE_ERRORS


def _sqlite_file(path: Path, make) -> bytes:
    make(path)
    data = path.read_bytes()
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    return data


def _file_mutate(rng: Rng, base: bytes) -> bytes:
    """A few edits of a binary file: in its first 4 KB (headers), anywhere, or the file cut short."""
    k = rng.below(8)
    if k == 0:
        return base[: rng.below(len(base))]
    if k < 4:
        head = min(len(base), 4096)
        return mutate(rng, base[:head]) + base[head:]
    i = rng.below(len(base))
    return base[:i] + mutate(rng, base[i : i + 64]) + base[i + 64 :]


def _clear(path: Path) -> None:
    for extra in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + extra).unlink(missing_ok=True)


def _sqlite_target(path: Path, make, read):
    """A target over damaged copies of the SQLite file make(path) writes: each input replaces the
    file (and its WAL), then read() opens and reads it."""
    base = _sqlite_file(path, make)

    def gen(rng: Rng) -> bytes:
        return _file_mutate(rng, base)

    def run(data: bytes) -> None:
        _clear(path)
        path.write_bytes(data)
        read()

    return gen, run, FILE_ERRORS


def _recording_db():
    from loraspot.monitor import report
    from loraspot.monitor.record import DatabaseSink, Record

    path = _tmp("run.sqlite")

    def make(p: Path) -> None:
        sink = DatabaseSink(p)
        sink.write_batch([Record.from_dict(r) for r in _records()])
        sink.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sink.finish()

    return _sqlite_target(path, make, lambda: report.analyse(report.load(path)))


def _inventory():
    from loraspot.provision.inventory import Inventory

    path = _tmp("inventory.sqlite")
    key = bytes(range(32))

    def make(p: Path) -> None:
        with Inventory(p, key) as inv:
            for i in range(3):
                eui = "70B3D57ED00000%02X" % i
                inv.add_device(eui, name="node %d" % i)
                inv.set_secret(eui, "app_key", bytes([i]) * 16)
            inv.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def read() -> None:
        with Inventory(path, key) as inv:
            for d in inv.devices():
                for kind in inv.secret_kinds(d.dev_eui):
                    inv.secret(d.dev_eui, kind)
                d.public()

    return _sqlite_target(path, make, read)


def _vendor_euis():
    from loraspot.provision.provision import VendorEuis

    path = _tmp("euis.csv")
    base = b"dev_eui,mac\n70B3D57ED0000001,24:0A:C4:00:00:01\n70B3D57ED0000002,\n70-B3-D5-7E-D0-00-00-03,240ac4000003\n"

    def gen(rng: Rng) -> bytes:
        return mutate(rng, base)

    def run(data: bytes) -> None:
        path.write_bytes(data)
        VendorEuis.load(path)

    return gen, run, FILE_ERRORS


def _image():
    from loraspot import boards
    from loraspot.flash import espimage, flasher
    from loraspot.flash import partitions as fsimage

    profile = boards.all_boards()["virtual"]
    base = espimage.placeholder(profile)
    offset = espimage.BOOTLOADER_OFFSET[profile["chip"]]
    table = fsimage.TABLE_OFFSET - offset
    app = next(p for p in fsimage.partitions_for(profile) if p.type == fsimage.TYPE_APP).offset - offset
    path = _tmp("firmware.bin")

    def gen(rng: Rng) -> bytes:
        at = rng.pick((0, 0, table, app, app, rng.below(len(base))))
        span = 32 + rng.below(200)
        out = base[:at] + mutate(rng, base[at : at + span]) + base[at + span :]
        return out[: rng.below(len(out))] if not rng.below(10) else out

    def run(data: bytes) -> None:
        path.write_bytes(data)
        flasher.load_firmware(profile, path)

    return gen, run, FILE_ERRORS


def _keys():
    from loraspot.listen.server import load_keys

    path = _tmp("keys")
    bases = (json.dumps({DEV: APPKEY.hex(), "70B3D57ED0005678": "00" * 16}).encode(),
             b"dev_eui,app_key\n70B3D57ED0001234,000102030405060708090a0b0c0d0e0f\n# a comment\n"
             b"70:B3:D5:7E:D0:00:56:78 , 0f0e0d0c0b0a09080706050403020100\n")

    def gen(rng: Rng) -> bytes:
        base = rng.pick(bases)
        if base[:1] == b"{" and rng.below(2):
            return json.dumps(_mutate_obj(rng, json.loads(base))).encode()
        return mutate(rng, base)

    def run(data: bytes) -> None:
        path.write_bytes(data)
        load_keys(path)

    return gen, run, FILE_ERRORS


def _console_host():
    from loraspot.console import codec

    bases = [codec.encode(x) for x in (
        {"id": 1, "ok": True, "result": {"version": "0.9", "free": 41000, "locked": False}},
        {"id": 2, "ok": False, "error": {"code": "locked", "message": "the board is locked"}},
        {"ev": "rx", "seq": 4, "t": 1234, "data": {"rssi": -80, "snr": 7.5}},
        {"ev": "boot", "seq": 0, "t": 0, "data": {"boot": "0a1b", "reset": "power"}})]

    def gen(rng: Rng) -> bytes:
        return mutate(rng, rng.pick(bases).rstrip(b"\n"))

    def run(data: bytes) -> None:
        codec.decode(data)

    return gen, run, (codec.FrameError,)


TARGETS = {"semtech_server": _semtech_server, "listen_mqtt": _listen_mqtt, "recording": _recording,
           "recording_db": _recording_db, "inventory": _inventory, "vendor_euis": _vendor_euis, "image": _image,
           "keys": _keys, "console_host": _console_host}


def run(name: str, seed: int, count: int, corpus: list[bytes]) -> dict:
    """The target's corpus, then `count` generated inputs: the same report as a firmware target's
    (crashes, one per line up to 20; allocated blocks every 10,000 inputs after a warm-up)."""
    import logging

    logging.disable(logging.CRITICAL)  # a library's log line per bad input is not what is measured
    # json.loads(bytes) imports the codec of a UTF-16/32 input the first time one comes: a module
    # loaded once, imported here so it is not taken for a leak when it happens after the warm-up
    for codec in ("utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        codecs.lookup(codec)
    with tempfile.TemporaryDirectory(prefix="loraspot-fuzz-") as tmp:
        _TMP.append(Path(tmp))
        try:
            return _run(name, seed, count, corpus)
        finally:
            _TMP.pop()


def _run(name: str, seed: int, count: int, corpus: list[bytes]) -> dict:
    _BEFORE_SAMPLE.clear()
    gen, fn, allowed = TARGETS[name]()
    rng = Rng(seed)
    crashes: list[dict] = []
    count_crashes = 0
    blocks: list[int] = []
    total = len(corpus) + count
    t0 = time.monotonic()
    for k in range(total):
        data = corpus[k] if k < len(corpus) else gen(rng)
        try:
            fn(data)
        except allowed:
            pass
        except Exception as e:  # a crash: any other exception, with the input that raised it
            count_crashes += 1
            if len(crashes) < 20:
                crashes.append({"input": data.hex(), "error": f"{type(e).__name__}: {e}"[:300]})
        if (k >= 1000 and (k - 1000) % 10000 == 0) or k == total - 1:
            for empty in _BEFORE_SAMPLE:
                empty()
            gc.collect()
            blocks.append(sys.getallocatedblocks())
    ms = max(1, int((time.monotonic() - t0) * 1000))
    return {"target": name, "inputs": total, "crashes": crashes, "crash_count": count_crashes, "free": blocks,
            "ms": ms, "resets": 0, "pid": os.getpid()}
