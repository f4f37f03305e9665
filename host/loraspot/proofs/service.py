"""The ledger service (`loraspot ledger serve`): hotspots upload their closed receipt batches to it
over HTTP, each checked into the ledger or refused with its reason.

    POST /batches    body: a batch as the board keeps it (header, signature, records back to back)
        200 {"ok": true, "gateway_eui", "seq", "records"}, and "challenge" (hex, 16 bytes) when
            one is waiting for that gateway: it answers with a beacon carrying it
        409 {"refused": reason, "error": words}    a check failed (loraspot.proofs.ledger)
        400 {"refused": "unreadable", "error": words}, 413 too large, 404 elsewhere
    GET /gateways/<EUI>    {"gateway_eui", "seq", "head"} of the last batch taken (404: none yet)

With an MQTT broker (`--mqtt`), it also takes what hotspots on the MQTT backhaul publish to
PREFIX/gateway/GATEWAY_ID/event/receipts (the same bytes as the POST's body).

An upload needs no other credential: a batch is taken only when it is signed by the identity key
the ledger holds for its gateway, and whole (its records make the signed Merkle root). Requests are
served one at a time: the ledger is one SQLite file, and a board uploads a batch now and then."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

from loraspot.proofs.ledger import Ledger, Refused
from loraspot.proofs.receipts import batch_from_bytes

MAX_BODY = 1 << 20  # a batch of 1024 records (the board's largest) is 54 KB
TIMEOUT = 30.0  # s a client may take with its request


class LedgerService:
    def __init__(self, ledger: Path | str, host: str = "127.0.0.1", port: int = 8780,
                 log: Callable[[dict], None] | None = None, mqtt: str | None = None, mqtt_prefix: str = "eu868"):
        self.ledger = Ledger(ledger)
        self.log = log or (lambda _: None)
        self.lock = threading.Lock()  # one check at a time: the HTTP server's and the MQTT client's threads
        self.mqtt = None
        service = self

        class Handler(BaseHTTPRequestHandler):
            timeout = TIMEOUT

            def log_message(self, format, *args):
                pass

            def _answer(self, code: int, obj: dict) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                if self.path != "/batches":
                    return self._answer(404, {"error": "not found"})
                try:
                    size = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return self._answer(411, {"error": "a Content-Length is needed"})
                if not 0 <= size <= MAX_BODY:
                    return self._answer(413, {"error": f"a batch is at most {MAX_BODY} bytes"})
                data = self.rfile.read(size)
                code, obj = service.take(data, self.client_address[0])
                self._answer(code, obj)

            def do_GET(self):
                parts = self.path.strip("/").split("/")
                if len(parts) != 2 or parts[0] != "gateways":
                    return self._answer(404, {"error": "not found"})
                head = service.head(parts[1])
                self._answer(200 if head else 404, head or {"error": "no batch of this gateway yet"})

        self.server = HTTPServer((host, port), Handler)
        self.address = self.server.server_address[:2]
        self._thread: threading.Thread | None = None
        self._anchoring: threading.Event | None = None
        self._challenging: threading.Event | None = None
        if mqtt is not None:
            try:
                self.mqtt = self._subscribe(mqtt, mqtt_prefix, ledger)
            except BaseException:
                self.server.server_close()
                self.ledger.close()
                raise

    def _subscribe(self, url: str, prefix: str, ledger: Path | str):
        """Batches hotspots on the MQTT backhaul publish (PREFIX/gateway/ID/event/receipts), taken
        with a persistent session: what they publish while this service is away is kept by the
        broker and delivered when it is back (its client id is made from the ledger's path or URL)."""
        import hashlib

        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        from loraspot.listen.mqtt import MqttListenError, parse_url

        host, port = parse_url(url)
        topic = f"{prefix}/gateway/+/event/receipts"
        name = hashlib.sha256(str(ledger if isinstance(ledger, str) else ledger.resolve()).encode()).hexdigest()[:12]
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"loraspot-ledger-{name}", clean_session=False)
        client.reconnect_delay_set(0.05, 1)  # pyright: ignore[reportArgumentType] (paho takes seconds as a float)
        def on_connect(c, _userdata, _flags, _reason, _properties=None) -> None:
            c.subscribe(topic, qos=1)

        client.on_connect = on_connect

        def on_message(_c, _u, msg) -> None:
            try:  # paho's thread: an exception would end it, and every message after
                self.take(bytes(msg.payload), f"mqtt:{msg.topic.split('/')[2] if msg.topic.count('/') >= 2 else '?'}")
            except Exception as e:
                self.log({"peer": "mqtt", "ok": False, "reason": "internal", "error": str(e)})

        client.on_message = on_message
        try:
            client.connect(host, port, keepalive=30)
        except OSError as e:
            raise MqttListenError(f"cannot connect to the MQTT broker at {host}:{port}: {e}") from None
        client.loop_start()
        return client

    def take(self, data: bytes, peer: str) -> tuple[int, dict]:
        with self.lock:
            return self._take(data, peer)

    def _take(self, data: bytes, peer: str) -> tuple[int, dict]:
        try:
            batch = batch_from_bytes(data)
        except ValueError as e:
            self.log({"peer": peer, "ok": False, "reason": "unreadable", "error": str(e)})
            return 400, {"refused": "unreadable", "error": str(e)}
        eui = batch.header.gateway_eui.hex().upper()
        try:
            self.ledger.ingest(batch)
        except Refused as e:
            self.log({"peer": peer, "ok": False, "gateway_eui": eui, "seq": batch.header.seq, "reason": e.reason,
                      "error": str(e)})
            return 409, {"refused": e.reason, "error": str(e)}
        except self.ledger.db.errors as e:  # the database failing: the hotspot keeps the batch and sends it again
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.log({"peer": peer, "ok": False, "gateway_eui": eui, "seq": batch.header.seq, "reason": "store",
                      "error": why})
            return 503, {"error": f"the ledger's database: {why}"}
        taken = {"gateway_eui": eui, "seq": batch.header.seq, "records": batch.header.count}
        self.log({"peer": peer, "ok": True, **taken})
        answer: dict = {"ok": True, **taken}
        nonce = None if peer.startswith("mqtt:") else self._challenge_for(eui)  # (MQTT has no answer to carry it)
        if nonce is not None:  # the hotspot answers with a beacon carrying it (docs/proofs.md)
            answer["challenge"] = nonce.hex()
        return 200, answer

    def challenge(self, eui: str) -> bytes:
        """A fresh nonce for gateway eui, given to it with the answer to its next upload; the
        beacon it then sends carries it, which shows the beacon was made after this moment."""
        import os
        import time

        nonce = os.urandom(16)
        with self.lock:
            self.ledger.db.execute("INSERT INTO challenges (eui, nonce, issued_at) VALUES (?, ?, ?)",
                                   (eui.upper(), nonce, time.time()))
        return nonce

    def _challenge_for(self, eui: str) -> bytes | None:
        import time

        row = self.ledger.db.execute("SELECT nonce FROM challenges WHERE eui = ? AND given_at IS NULL "
                                     "ORDER BY issued_at LIMIT 1", (eui,)).fetchone()
        if row is None:
            return None
        self.ledger.db.execute("UPDATE challenges SET given_at = ? WHERE nonce = ?", (time.time(), row[0]))
        return row[0]

    def head(self, eui: str) -> dict | None:
        with self.lock:
            return self._head(eui)

    def _head(self, eui: str) -> dict | None:
        row = self.ledger.db.execute("SELECT seq, hash FROM batches WHERE eui = ? ORDER BY seq DESC LIMIT 1",
                                     (eui.upper(),)).fetchone()
        return None if row is None else {"gateway_eui": eui.upper(), "seq": row[0], "head": row[1].hex()}

    def challenge_every(self, every_s: float) -> None:
        """A challenge for each gateway the ledger knows every every_s seconds (one waiting at a time)."""
        stop = self._challenging = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s):
                with self.lock:
                    euis = [e for (e,) in self.ledger.db.execute(
                        "SELECT eui FROM gateways WHERE eui NOT IN "
                        "(SELECT eui FROM challenges WHERE given_at IS NULL)")]
                for eui in euis:
                    self.challenge(eui)

        threading.Thread(target=loop, daemon=True).start()

    def anchor_every(self, anchorer, every_s: float) -> None:
        """Write the ledger's head to a chain every every_s seconds (loraspot.proofs.anchor), in a
        thread of its own; each anchor or failure is logged, and a failure changes nothing else."""
        from loraspot.proofs.anchor import AnchorError

        stop = self._anchoring = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    with self.lock:
                        got = anchorer.anchor(self.ledger)
                except AnchorError as e:
                    self.log({"peer": "anchor", "ok": False, "reason": "anchor_failed", "error": str(e)})
                    continue
                if got is not None:
                    self.log({"peer": "anchor", "ok": True, "anchor": got})

        threading.Thread(target=loop, daemon=True).start()

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> LedgerService:
        """Serve in a thread (tests, benchmarks)."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        for stop in (self._anchoring, self._challenging):
            if stop is not None:
                stop.set()
        if self.mqtt is not None:
            self.mqtt.loop_stop()
            self.mqtt.disconnect()
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join()
        self.server.server_close()
        self.ledger.close()

    def __enter__(self) -> LedgerService:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
