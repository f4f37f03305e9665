"""Chunked file transfer over the console: each chunk waits for its acknowledgement, and the
device checks size and SHA-256 before it renames the received file into place."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from loraspot.console.client import ConsoleClient
from loraspot.errors import DeviceError, DeviceReset, DeviceTimeout, PortGone, TransferError

Progress = Callable[[int, int], None]


def put_file(client: ConsoleClient, path: str, data: bytes, progress: Progress | None = None) -> None:
    digest = hashlib.sha256(data).hexdigest()
    try:
        chunk = int(client.request("fs.put", {"path": path, "size": len(data), "sha256": digest})["chunk"])
        off = 0
        while off < len(data):
            piece = data[off : off + chunk]
            try:
                off = int(client.request("fs.write", {"off": off, "data": base64.b64encode(piece).decode()})["off"])
            except DeviceError as e:
                if e.code != "bad_offset":
                    raise
                off = int(e.message.rsplit(" ", 1)[-1])  # an answer was lost: continue where the device is
            if progress:
                progress(off, len(data))
        client.request("fs.end")
    except (DeviceError, DeviceReset, DeviceTimeout, PortGone) as e:
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
