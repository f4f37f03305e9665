# Updates over the air: a TCP service (config ota_port) that takes the same changed-files pack as
# `loraspot deploy`, authenticated with the board's admin key, into a staging area that
# spot.otaboot switches to at the next boot (docs/ota.md). One session at a time.
#
# The session (text lines end in "\n"; sizes in bytes; digests SHA-256 in hex):
#   board:  {"ota": 1, "board", "id", "app", "phase", "nonce", "manifest": size} + the /app.json bytes
#   host:   {"manifest": [size, digest], "pack": [size, digest], "label": text, "mac": hex}
#           mac: HMAC-SHA256 under the admin key of nonce || "ota\n" || canonical JSON of the
#           line without "mac" (spot.auth.message), checked before a byte is written
#   board:  {"ok": "send"} or {"err": code, "msg": text}
#   host:   the manifest, then the pack (spot.fsops: u8 path length, path, u32 size, data; 0)
#   board:  {"ok": {"files", "bytes", "app"}} then one reboot, or {"err", "msg"} with nothing staged
import asyncio
import binascii
import gc
import hashlib
import json
import os

import otaboot

from spot.atomic import exists, remove
from spot.auth import hmac_sha256, message, same

CHUNK = 512
READ_TIMEOUT_MS = 20000  # network time: a silent host is a cut upload
MAX_LINE = 400
MAX_MANIFEST = 16384
MAX_PACK = 1 << 20
STAGE = otaboot.DIR + "/new/"
UNDER_WAY = ("staged", "switching", "trial", "rollback", "rolling")  # phases a new session must not disturb


class Looked(Exception):
    pass


class Refused(Exception):
    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code


def _hex(b):
    return binascii.hexlify(b).decode()


version_of = otaboot.version_of


class Session:
    """One update session on an accepted connection (the listener is App._ota_listen, which keeps
    this module unloaded between sessions and refuses a second one while this one runs)."""

    def __init__(self, app):
        self.app = app
        self.counts = app.ota_counts
        self.header = False  # the host sent its header: from here a broken connection is a refusal

    async def run(self, conn):
        conn.setblocking(False)
        stream = asyncio.StreamReader(conn)  # MicroPython's one Stream class, reading and writing
        staged = False
        try:
            staged = await self._run(stream, stream, bytearray(CHUNK))
        except Looked:  # the host read the greeting and left: a look at the version, not an upload
            pass
        except Refused as e:
            self._refused(e.code, str(e))
            await self._answer(stream, {"err": e.code, "msg": str(e)})
        except MemoryError:
            gc.collect()
            self._refused("no_memory", "out of memory: try again")
            await self._answer(stream, {"err": "no_memory", "msg": "out of memory: try again"})
        except Exception as e:  # the connection broke: nothing staged
            if self.header:  # (before the header: the host only looked at the greeting)
                self._refused("io", "%s: %s" % (type(e).__name__, e))
        finally:
            if not staged:
                self._clean()
            await self._close(stream)
            gc.collect()
        if staged:
            await asyncio.sleep_ms(200)  # the answer reaches the host before the reset
            self.app.board.reset()

    def _refused(self, code, msg):
        self.counts["refused"] += 1
        self.counts["last_refusal"] = "%s: %s" % (code, msg[:60])
        self.app.console.event("ota", {"refused": code, "msg": msg[:80]})

    async def _answer(self, w, obj):
        try:
            w.write(json.dumps(obj).encode() + b"\n")
            await w.drain()
        except OSError:
            pass

    async def _close(self, w):
        try:
            w.close()
            await w.wait_closed()
        except OSError:
            pass

    async def _run(self, r, w, buf):
        app = self.app
        nonce = os.urandom(16)
        st = otaboot.state() or {}
        msize = 0
        try:
            msize = os.stat("/" + "app.json")[6]
        except OSError:
            pass
        greet = {"ota": 1, "board": app.board.id, "id": app.board.device_id(), "app": version_of("/app.json"),
                 "phase": st.get("phase"), "romfs": exists("/rom"), "nonce": _hex(nonce), "manifest": msize,
                 "slot": otaboot.slot(), "why": st.get("why")}
        w.write(json.dumps(greet).encode() + b"\n")
        if msize:
            await self._send_file(w, "/app.json", buf)
        await w.drain()
        line = await self._line(r)
        self.header = True
        try:
            head = json.loads(line)
            mac = binascii.unhexlify(head.pop("mac"))
            fw = head.get("firmware")
            if fw is None:
                msize, mdigest = head["manifest"]
                psize, pdigest = head["pack"]
            else:
                msize = mdigest = psize = pdigest = None
                fsize, fdigest = fw
        except (ValueError, KeyError, TypeError, AttributeError):
            raise Refused("bad_request", "not an update header")
        key = app.secrets.get("admin_key")
        if not key:
            raise Refused("no_admin_key", "no admin key on this board: provision one before updates over the air")
        if not same(hmac_sha256(key, message(nonce, "ota", head)), mac):
            raise Refused("auth_failed", "the update is not signed with this board's admin key for this session")
        if st.get("phase") in UNDER_WAY:
            raise Refused("in_progress", "the previous update is %s: wait until it passed its health check"
                          % st.get("phase"))
        if fw is not None:
            return await self._firmware(r, w, fsize, fdigest, head.get("label"), st, buf)
        if not (isinstance(msize, int) and 0 < msize <= MAX_MANIFEST and isinstance(psize, int)
                and 0 < psize <= MAX_PACK and isinstance(mdigest, str) and isinstance(pdigest, str)):
            raise Refused("bad_request", "sizes out of range")
        self._clean()
        await self._answer(w, {"ok": "send"})
        otaboot.makedirs(STAGE + "x")
        if await self._receive(r, otaboot.DIR + "/app.json.part", msize) != mdigest:
            raise Refused("bad_digest", "the manifest received is not the one signed")
        if await self._receive(r, otaboot.DIR + "/pack.part", psize) != pdigest:
            raise Refused("bad_digest", "the pack received is not the one signed")
        with open(otaboot.DIR + "/list", "w") as listing:
            files, total = self._unpack(otaboot.DIR + "/pack.part", buf, listing)
            listing.write("app.json\t%d\n" % (0 if exists("/app.json") else 1))
        remove(otaboot.DIR + "/pack.part")
        os.rename(otaboot.DIR + "/app.json.part", STAGE + "app.json")
        label = head.get("label")
        otaboot.save({"phase": "staged", "app": version_of(STAGE + "app.json"), "prev": version_of("/app.json"),
                      "label": label if isinstance(label, str) else "", "rollbacks": st.get("rollbacks", 0)})
        self.counts["staged"] += 1
        ok = {"files": files, "bytes": total, "app": version_of(STAGE + "app.json")}
        app.console.event("ota", {"staged": ok["app"], "files": files})
        await self._answer(w, {"ok": ok})
        return True

    async def _firmware(self, r, w, size, digest, label, st, buf):
        """MicroPython itself into the app slot that is not running (an image with two,
        ESP32_GENERIC-OTA), read back, then booted once on trial (esp32.Partition.set_boot): the
        health check confirms it (otaboot.passed), any reset before that goes back."""
        try:
            import esp32

            # (the stubs type the id as a label; RUNNING is an int, as MicroPython documents it)
            run = esp32.Partition(esp32.Partition.RUNNING)  # pyright: ignore[reportArgumentType]
            slot = run.get_next_update()
        except (ImportError, AttributeError, OSError, ValueError):
            raise Refused("one_slot", "this image has one app slot: MicroPython itself is replaced by cable "
                          "(an ESP32_GENERIC-OTA image has two)")
        if not (isinstance(size, int) and 0 < size <= slot.info()[3] and isinstance(digest, str)):
            raise Refused("bad_request", "the image does not fit the %s slot" % slot.info()[4])
        await self._answer(w, {"ok": "send"})
        h = hashlib.sha256()
        done = 0
        while done < size:  # a 4 KB block erased, then programmed a chunk at a time
            block, off = done // 4096, done % 4096
            if not off:
                slot.ioctl(6, block)
            part = await asyncio.wait_for_ms(r.read(min(size - done, CHUNK, 4096 - off)), READ_TIMEOUT_MS)
            if not part:
                raise Refused("truncated", "the upload ended %d bytes early" % (size - done))
            h.update(part)
            slot.writeblocks(block, part, off)
            done += len(part)
        if _hex(h.digest()) != digest:
            raise Refused("bad_digest", "the image received is not the one signed")
        h = hashlib.sha256()
        done = 0
        while done < size:
            n = min(size - done, CHUNK, 4096 - done % 4096)
            view = memoryview(buf)[:n]
            slot.readblocks(done // 4096, view, done % 4096)  # pyright: ignore[reportArgumentType]
            h.update(view)
            done += n
        if _hex(h.digest()) != digest:
            raise Refused("flash", "the %s slot reads back differently from what was written" % slot.info()[4])
        try:
            slot.set_boot()
        except OSError:
            raise Refused("bad_image", "the image is not an application this board's bootloader accepts")
        version = version_of("/app.json")
        otaboot.save({"phase": "trial", "boots": 0, "app": version, "prev": version,
                      "firmware": {"slot": slot.info()[4], "prev": run.info()[4], "size": size},
                      "label": label if isinstance(label, str) else "", "rollbacks": st.get("rollbacks", 0)})
        self.counts["staged"] += 1
        ok = {"firmware": size, "slot": slot.info()[4]}
        self.app.console.event("ota", {"staged": "firmware", "slot": ok["slot"]})
        await self._answer(w, {"ok": ok})
        return True

    async def _line(self, r):
        line = await asyncio.wait_for_ms(r.readline(), READ_TIMEOUT_MS)
        if not line:
            raise Looked()
        if len(line) > MAX_LINE or line[-1:] != b"\n":
            raise Refused("bad_request", "no update header")
        return line

    async def _send_file(self, w, path, buf):
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                w.write(memoryview(buf)[:n])
                await w.drain()

    async def _receive(self, r, path, size):
        """size bytes from the host into path; their SHA-256 (hex)."""
        h = hashlib.sha256()
        left = size
        with open(path, "wb") as f:
            while left:
                part = await asyncio.wait_for_ms(r.read(min(left, CHUNK)), READ_TIMEOUT_MS)
                if not part:
                    raise Refused("truncated", "the upload ended %d bytes early" % left)
                h.update(part)
                f.write(part)
                left -= len(part)
        return _hex(h.digest())

    def _unpack(self, pack, buf, listing):
        """The pack's files into the staging area, each one read back from flash and checked, and
        named in `listing` as it goes (no list of them in the heap: a whole library is 70 paths).
        Returns (number of files, bytes)."""
        files = 0
        total = 0
        with open(pack, "rb") as f:
            while True:
                n = f.read(1)
                if not n:
                    raise Refused("bad_pack", "the pack has no end mark")
                if not n[0]:
                    break
                path = f.read(n[0]).decode()
                if path.startswith("/"):
                    path = path[1:]
                if not path or ".." in path.split("/") or path.startswith(".ota") or path in otaboot.GUARD:
                    raise Refused("bad_pack", "%s cannot be replaced over the air" % path)
                if path.startswith("lib/") and exists("/rom"):
                    raise Refused("romfs", "this board runs its library from a read-only ROMFS: %s needs a "
                                  "flash by cable" % path)
                size = int.from_bytes(f.read(4), "little")
                dst = STAGE + path
                otaboot.makedirs(dst)
                h = hashlib.sha256()
                left = size
                with open(dst, "wb") as out:
                    while left:
                        k = f.readinto(memoryview(buf)[: min(left, CHUNK)])
                        if not k:
                            raise Refused("bad_pack", "%s ends early" % path)
                        h.update(memoryview(buf)[:k])
                        out.write(memoryview(buf)[:k])
                        left -= k
                want = h.digest()  # read back here, not with spot.fsops.file_sha256: loading
                h = hashlib.sha256()  # fsops for a session left a forwarding hotspot without heap
                with open(dst, "rb") as back:
                    while True:
                        k = back.readinto(buf)
                        if not k:
                            break
                        h.update(memoryview(buf)[:k])
                if h.digest() != want:
                    raise Refused("flash", "%s reads back differently from what was written" % path)
                listing.write("%s\t%d\n" % (path, 0 if exists("/" + path) else 1))
                files += 1
                total += size
        return files, total

    def _clean(self):
        """Whatever a session left in the staging area (nothing of a switch in progress)."""
        st = otaboot.state()
        if st is not None and st.get("phase") in UNDER_WAY:
            return
        _rmtree(otaboot.DIR + "/new")
        _rmtree(otaboot.DIR + "/old")
        for name in ("/pack.part", "/app.json.part", "/list"):
            remove(otaboot.DIR + name)


def _rmtree(path):
    try:
        entries = list(os.ilistdir(path))
    except OSError:
        return
    for e in entries:
        p = path + "/" + e[0]
        if e[1] == 0x4000:
            _rmtree(p)
        else:
            remove(p)
    try:
        os.rmdir(path)
    except OSError:
        pass
