"""Chunked file transfer over the console: each chunk waits for its acknowledgement, and the
device checks size and SHA-256 before it renames the received file into place.

A device that has `fs.data` takes raw windows of up to 2 KB (one request per window instead of
base64 in 135-byte requests) and deflate-compressed data, inflated on the device."""

from __future__ import annotations

import base64
import hashlib
import time
import zlib
from collections.abc import Callable

from loraspot.console.client import ConsoleClient
from loraspot.errors import DeviceError, DeviceReset, DeviceTimeout, PortGone, ProtocolError, TransferError

Progress = Callable[[int, int], None]


ZBITS = 12  # deflate window: 4 KB on the device while it inflates


def deflated(data: bytes, bits: int = ZBITS) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -bits)
    return c.compress(data) + c.flush()


RAW_ABANDON_S = 2.5  # longer than the device waits for the rest of a raw window


def put_file(client: ConsoleClient, path: str, data: bytes, progress: Progress | None = None) -> None:
    """Write `data` to `path` on the device; `progress(done, total)` counts bytes on the line.

    Raw windows have no acknowledgement of their own: when the device misses bytes of one (its
    receive FIFO overran), the transfer stalls. Then the host waits until the device has given
    the window up and sends the file again in acknowledged chunks."""
    fast = "fs.data" in client.caps
    try:
        _put(client, path, data, progress, fast)
    except TransferError as e:
        cause = e.__cause__
        if not fast or isinstance(cause, PortGone | DeviceReset):
            raise
        time.sleep(RAW_ABANDON_S)
        client.counters["raw_fallbacks"] = client.counters.get("raw_fallbacks", 0) + 1
        try:
            client.request("hello")  # back in step: whatever was left of the window was read as noise
        except (DeviceError, DeviceTimeout, ProtocolError):
            pass
        _put(client, path, data, progress, False)


def _put(client: ConsoleClient, path: str, data: bytes, progress: Progress | None, fast: bool) -> None:
    digest = hashlib.sha256(data).hexdigest()
    args: dict = {"path": path, "size": len(data), "sha256": digest}
    payload = data
    if fast and len(data) > 64:
        z = deflated(data)
        if len(z) < len(data) * 0.95:
            payload = z
            args.update(z=ZBITS, csize=len(z))
    try:
        res = client.request("fs.put", args)
        window = int(res.get("window", 0)) if fast else 0
        chunk = int(res["chunk"])
        off = 0
        while off < len(payload):
            if window:
                piece = payload[off : off + window]
                # no resend: a repeated request would land inside the raw bytes
                client.request("fs.data", {"off": off, "n": len(piece)}, resends=0)
                client.send_raw(piece)
                off += len(piece)
            else:
                piece = payload[off : off + chunk]
                try:
                    off = int(client.request("fs.write", {"off": off, "data": base64.b64encode(piece).decode()})["off"])
                except DeviceError as e:
                    if e.code != "bad_offset":
                        raise
                    off = int(e.message.rsplit(" ", 1)[-1])  # an answer was lost: continue where the device is
            if progress:
                progress(off, len(payload))
        client.request("fs.end", timeout=max(client.timeout, 5 + len(data) / 20000))
    except (DeviceError, DeviceReset, DeviceTimeout, PortGone, ProtocolError) as e:
        raise TransferError(f"upload of {path} failed: {e}; the device keeps its previous file") from e


def get_file(client: ConsoleClient, path: str, progress: Progress | None = None) -> bytes:
    try:
        st = client.request("fs.stat", {"path": path})
        if st.get("type") != "f":
            raise TransferError(f"{path} is not a file")
        size, want = int(st["size"]), st["sha256"]
        out = bytearray()
        while len(out) < size:
            res = client.request("fs.get", {"path": path, "off": len(out)})
            piece = base64.b64decode(res["data"])
            if not piece:
                break
            out += piece
            if progress:
                progress(len(out), size)
    except (DeviceError, DeviceReset, DeviceTimeout, PortGone) as e:
        raise TransferError(f"download of {path} failed: {e}") from e
    if len(out) != size or hashlib.sha256(out).hexdigest() != want:
        raise TransferError(f"download of {path}: size or SHA-256 differs from the device's (file changed?)")
    return bytes(out)
