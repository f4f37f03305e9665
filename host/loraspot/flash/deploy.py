"""`loraspot deploy`: update the app files of a board that already runs loraspot, over the console
protocol while the firmware runs. The board keeps a manifest (`/app.json`: bundle path -> SHA-256,
written by `loraspot flash` and by each deploy); only files whose hash differs are sent, each one
written to a temporary file, checked by size and SHA-256 and renamed into place by the device; then
the manifest, then one reboot. `via_mpremote` does the same through mpremote's raw REPL for a board
with stock MicroPython."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from loraspot import boards, device, resources
from loraspot.console.files import get_file, put_file
from loraspot.errors import LoraspotError, TransferError
from loraspot.flash import image as fsimage
from loraspot.flash.firmware import target
from loraspot.flash.mpy import compiled_firmware

MANIFEST, NOT_DEPLOYED = fsimage.MANIFEST, fsimage.NOT_DEPLOYED
manifest_of, manifest_bytes = fsimage.manifest_of, fsimage.manifest_bytes


class DeployError(LoraspotError):
    exit_code = 6


def app_files(profile: dict) -> dict[str, bytes]:
    """What `loraspot flash` would put on this board (bytecode library, boot.py, main.py, profile)."""
    mpy = compiled_firmware(resources.cache_dir() / "mpy-cache")
    return {k: v for k, v in fsimage.app_files(profile, mpy_dir=mpy).items() if k not in NOT_DEPLOYED}


def _deployable(profile: dict, files: dict[str, bytes] | None) -> dict[str, bytes]:
    if files is None:
        return app_files(profile)
    return {k: v for k, v in files.items() if k not in NOT_DEPLOYED}


@dataclass
class DeployResult:
    port: str
    sent: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0
    rebooted: bool = False
    app: str = ""  # over the air: the app version the board runs once it has the files

    def as_dict(self) -> dict:
        return {"port": self.port, "sent": self.sent, "unchanged": self.unchanged, "bytes": self.bytes_sent,
                "seconds": round(self.seconds, 3), "rebooted": self.rebooted, **({"app": self.app} if self.app else {})}


def _remote_manifest(client) -> dict[str, str] | None:
    try:
        data = get_file(client, "/" + MANIFEST)
    except TransferError:
        return None
    try:
        files = json.loads(data)["files"]
        return {str(k): str(v) for k, v in files.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _same_manifest(client, wanted: bytes) -> bool:
    """One fs.stat: the device's manifest is byte for byte the one this deploy would write."""
    try:
        st = client.request("fs.stat", {"path": "/" + MANIFEST})
    except LoraspotError:
        return False
    return st.get("sha256") == hashlib.sha256(wanted).hexdigest()


def _remote_hashes(client, paths: list[str]) -> dict[str, str]:
    """Without a manifest: each file's SHA-256 as the device computes it."""
    out = {}
    for p in paths:
        try:
            st = client.request("fs.stat", {"path": "/" + p})
        except LoraspotError:
            continue
        if st.get("type") == "f":
            out[p] = st["sha256"]
    return out


def check_runtime(hello: dict) -> None:
    """Refuse, before anything is written, a board whose MicroPython (sys.implementation.version
    and _mpy with the arch bits masked, as hello reports them) is not what the bundle is built and
    tested for. Firmware too old to report them is let through: the deploy replaces it."""
    want = target()
    have_mpy, have_mp = hello.get("mpy"), hello.get("micropython")
    if have_mpy is not None and have_mpy != want["mpy"]:
        raise DeployError(f"the board loads .mpy {have_mpy}; this bundle is bytecode {want['mpy']}: flash a "
                          f"MicroPython {want['micropython']} image first (loraspot flash)")
    if have_mp is not None and ".".join(str(have_mp).split(".")[:2]) != want["micropython"]:
        raise DeployError(f"the board runs MicroPython {have_mp}; this bundle is built and tested for "
                          f"{want['micropython']}: flash a {want['micropython']} image first (loraspot flash)")


def deploy(url: str, files: dict[str, bytes] | None = None, baud: int = 115200, reboot: bool = True,
           dry_run: bool = False) -> DeployResult:
    start = time.monotonic()
    res = DeployResult(url)
    client, hello = device.connect(url, baud)
    try:
        check_runtime(hello)
        profile = boards.get(hello["board"])
        files = _deployable(profile, files)
        local = manifest_of(files)
        manifest = manifest_bytes(files)
        if _same_manifest(client, manifest):
            res.unchanged = len(local)
            return res
        remote = _remote_manifest(client)
        if remote is None:
            remote = _remote_hashes(client, list(local))
        changed = [p for p in local if remote.get(p) != local[p]]
        res.unchanged = len(local) - len(changed)
        if changed and any(p.startswith(fsimage.ROMFS_DIR) for p in changed) and _has_romfs(client):
            raise DeployError("this board runs its library from a ROMFS image, which is read-only: library changes "
                              f"({', '.join(p for p in changed if p.startswith(fsimage.ROMFS_DIR))}) need "
                              "`loraspot flash`")
        if dry_run or not changed:
            res.sent = changed if dry_run else []
            return res
        if "fs.unpack" in client.caps:
            # One compressed stream for every changed file and the manifest: a single transfer
            # instead of three round trips per file, and deflate finds more to share.
            pack = make_pack({"/" + p: files[p] for p in changed} | {"/" + MANIFEST: manifest})
            put_file(client, PACK, pack)
            try:
                client.request("fs.unpack", {"path": PACK}, timeout=10 + len(pack) / 20000)
            except LoraspotError as e:
                raise TransferError(f"unpacking on the device failed: {e}; the device keeps its previous files") from e
        else:
            _put_each(client, files, changed)
        res.sent = changed
        res.bytes_sent = sum(len(files[p]) for p in changed)
        if reboot:
            device.reboot(client, greet=False)
            res.rebooted = True
    finally:
        client.close()
        res.seconds = time.monotonic() - start
    return res


PACK = "/.deploy.pack"


def make_pack(files: dict[str, bytes]) -> bytes:
    """fs.unpack's format: per file u8 path length, path, u32 little-endian size, data; then 0."""
    out = bytearray()
    for path, data in files.items():
        name = path.encode()
        if not 0 < len(name) < 256:
            raise DeployError(f"path too long for a pack: {path}")
        out += bytes([len(name)]) + name + len(data).to_bytes(4, "little") + data
    return bytes(out + b"\0")


def _put_each(client, files: dict[str, bytes], changed: list[str]) -> None:
    """Firmware without fs.unpack: one atomic put per file, then the manifest."""
    made: set[str] = set()
    for p in changed:
        parts = p.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:depth])
            if d not in made:
                client.request("fs.mkdir", {"path": d})
                made.add(d)
        put_file(client, "/" + p, files[p])
    put_file(client, "/" + MANIFEST, manifest_bytes(files))


def _has_romfs(client) -> bool:
    try:
        entries = client.request("fs.ls", {"path": "/"})["entries"]
    except LoraspotError:
        return False
    return any(e[0] == "rom" and e[1] == "d" for e in entries)


def _mpremote(port: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """One mpremote run. mpremote waits without end on a pty (a virtual board's) when the board
    does not answer, e.g. its app keeps Ctrl-C off (a board locked in production mode): after
    `timeout` s that is a DeployError, not a traceback."""
    try:
        return subprocess.run([sys.executable, "-m", "mpremote", "connect", port, *args], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise DeployError(f"mpremote got no answer from {port} in {timeout:.0f} s: is the board's app stopped "
                          "by Ctrl-C (not locked in production mode)?") from None


def via_mpremote(port: str, profile: dict, files: dict[str, bytes] | None = None,
                 timeout: float = 600) -> DeployResult:
    """The same update through mpremote (raw REPL) for a board with stock MicroPython: the manifest
    is read with `fs cat`, the changed files copied with one mpremote run, then a reset (each run
    given up after `timeout` s)."""
    start = time.monotonic()
    res = DeployResult(port)
    files = _deployable(profile, files)
    local = manifest_of(files)
    p = _mpremote(port, "fs", "cat", ":" + MANIFEST, timeout=timeout)
    remote: dict[str, str] = {}
    if p.returncode == 0:
        try:
            remote = json.loads(p.stdout)["files"]
        except (ValueError, KeyError, TypeError):
            remote = {}
    changed = [k for k in local if remote.get(k) != local[k]]
    res.unchanged = len(local) - len(changed)
    if changed:
        with tempfile.TemporaryDirectory() as tmp:
            args: list[str] = []
            dirs = sorted({"/".join(k.split("/")[:i]) for k in changed for i in range(1, k.count("/") + 1)})
            for d in dirs:
                args += ["exec", f"import os\ntry:\n os.mkdir('/{d}')\nexcept OSError:\n pass", "+"]
            for k in [*changed, MANIFEST]:
                src = Path(tmp) / k.replace("/", "__")
                src.write_bytes(files[k] if k != MANIFEST else manifest_bytes(files))
                args += ["fs", "cp", str(src), ":" + k, "+"]
            args += ["reset"]
            p = _mpremote(port, *args, timeout=timeout)
            if p.returncode != 0:
                raise DeployError(f"mpremote failed: {(p.stderr or p.stdout).strip()[-400:]}")
        res.sent = changed
        res.bytes_sent = sum(len(files[k]) for k in changed)
        res.rebooted = True
    res.seconds = time.monotonic() - start
    return res
