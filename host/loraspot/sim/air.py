"""The air between a virtual board's Wi-Fi access point and the stations near it, on loopback.

A virtual board's firmware opens its set-up access point through the network.WLAN stand-in, which
tells its supervisor the SSID and the passphrase (the Wi-Fi radio holds them on a board). The
supervisor keeps only the WPA2 pairwise master key derived from them (IEEE 802.11i: PBKDF2-HMAC-
SHA1 of the passphrase, salted with the SSID, 4096 rounds, 32 bytes) and listens on a loopback port
for stations. A station opens a connection and says which network it joins with the key it
derived ("JOIN <ssid hex> <pmk hex>\\n"); the access point answers "OK\\n" and the connection
becomes a TCP connection to the board's web server (192.168.4.1:80 on a board), or "REFUSED
<why>\\n" and closes: a wrong passphrase never reaches the page. With no access point on, every
station is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import socket
import threading

from loraspot.errors import LoraspotError


class AirError(LoraspotError):
    exit_code = 2


def pmk(ssid: str, passphrase: str) -> bytes:
    """The WPA2-PSK pairwise master key (IEEE 802.11i-2004, H.4)."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32)


class AccessPoint:
    """The supervisor's side: the access point the firmware switched on, and the stations it lets in."""

    def __init__(self, web_port: int):
        self.web_port = web_port
        self._ap: tuple[str, bytes] | None = None  # (ssid, pmk) while the access point is on
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.joined = 0
        self.refused = 0
        self._closed = False
        threading.Thread(target=self._accept, name="air", daemon=True).start()

    @property
    def ssid(self) -> str | None:
        with self._lock:
            return self._ap[0] if self._ap else None

    def switch(self, ssid: str | None, passphrase: str | None = None) -> None:
        with self._lock:
            self._ap = (ssid, pmk(ssid, passphrase)) if ssid and passphrase else None

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._station, args=(conn,), daemon=True).start()

    def _station(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                line = _line(conn)
                why = self._check(line)
                if why:
                    self.refused += 1
                    conn.sendall(f"REFUSED {why}\n".encode())
                    return
                up = socket.create_connection(("127.0.0.1", self.web_port), 10)
            except OSError:
                return
            self.joined += 1
            conn.sendall(b"OK\n")
            conn.settimeout(None)
            with up:
                t = threading.Thread(target=_pipe, args=(up, conn), daemon=True)
                t.start()
                _pipe(conn, up)
                t.join(30)

    def _check(self, line: bytes) -> str:
        parts = line.split()
        if len(parts) != 3 or parts[0] != b"JOIN":
            return "not a join request"
        try:
            ssid, key = bytes.fromhex(parts[1].decode()).decode(), bytes.fromhex(parts[2].decode())
        except (ValueError, UnicodeDecodeError):
            return "not a join request"
        with self._lock:
            ap = self._ap
        if ap is None or ap[0] != ssid:
            return "no such network"
        if not hmac.compare_digest(ap[1], key):
            return "wrong passphrase"  # the 4-way handshake's MIC would not verify
        return ""


def _line(conn: socket.socket, limit: int = 256) -> bytes:
    out = b""
    while not out.endswith(b"\n"):
        b = conn.recv(1)
        if not b or len(out) > limit:
            raise OSError("no join request")
        out += b
    return out


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(4096)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def join(air_port: int, ssid: str, passphrase: str, timeout: float = 10.0) -> socket.socket:
    """A station's connection through the access point to the board's web server (AirError when it
    is refused)."""
    s = socket.create_connection(("127.0.0.1", air_port), timeout)
    try:
        s.sendall(b"JOIN %s %s\n" % (ssid.encode().hex().encode(), pmk(ssid, passphrase).hex().encode()))
        answer = _line(s).decode("ascii", "replace").strip()
    except OSError as e:
        s.close()
        raise AirError(f"the access point {ssid!r} did not answer: {e}") from None
    if answer != "OK":
        s.close()
        raise AirError(f"the access point {ssid!r} refused to let this station in: {answer.removeprefix('REFUSED ')}")
    return s
