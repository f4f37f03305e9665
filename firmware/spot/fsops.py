# File commands of the console: ls, stat, get (chunked reads), put (chunked, SHA-256 checked,
# written to a temporary file and renamed into place, so a cut transfer never leaves a partial file).
# A put's data comes either as base64 in fs.write requests or, faster, as raw bytes after each
# fs.data request (a window held in RAM, then written); it may be a raw deflate stream ("z"), which
# the device inflates at fs.end.
import asyncio
import binascii
import hashlib
import os

import micropython
from micropython import const

from spot.b64 import b64decode
from spot.console import CommandError, arg
from spot.fsnames import OPS, PART, PROTECTED

CHUNK = const(512)  # data bytes per fs.get answer (base64 keeps the frame under MAX_FRAME)
PUT_CHUNK = const(135)  # data bytes per fs.write: its frame stays within MAX_REQUEST (256)
WINDOW = const(2048)  # raw bytes per fs.data: received into RAM, so flash writes never stall the line
_RAW_WAIT_MS = const(2000)  # a window not complete this long after its last byte is abandoned
_LS_PAGE = const(24)
ZPART = ".z.part"  # the deflate stream of a compressed put, inflated into PART at fs.end


def normalise(path):
    """The one spelling of a console path, or None: absolute, no control characters or
    backslashes, no '..'; '//' and '.' segments removed (the filesystem ignores them, so
    '//secrets.json' is '/secrets.json'), no trailing '/'."""
    if not path.startswith("/") or "\\" in path:
        return None
    for c in path.encode():  # bytes: indexing the str would intern every distinct character
        if c < 0x20 or c == 0x7F:  # NUL would end the name in the C layer; no name needs the others
            return None
    parts = []
    for seg in path.split("/"):
        if seg == "..":
            return None
        if seg and seg != ".":
            parts.append(seg)
    return "/" + "/".join(parts)


def _path(args):
    """The path argument, normalised once before every check (every file command comes here)."""
    path = normalise(arg(args, "path", str))
    if path is None or len(path) > 96:
        raise CommandError("bad_args", "path must be absolute, without '..', '\\' or control characters, "
                                       "at most 96 characters")
    if path in PROTECTED or path.endswith(PART):
        raise CommandError("denied", "path is not accessible over the console")
    return path


def _io_error(e, path):
    if isinstance(e, OSError) and e.args and e.args[0] == 2:
        return CommandError("not_found", "no such file: %s" % path)
    return CommandError("io", "%s: %s" % (path, e))


def _hexdigest(h):
    # The ESP32 port's hashlib has no hexdigest().
    return binascii.hexlify(h.digest()).decode()


def _b64(text):
    data = b64decode(text)
    if data is None:
        raise CommandError("bad_args", "data is not base64")
    return data


def file_sha256(path, buf):
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
            size += n
    return size, _hexdigest(h)


def _mkdir(path):
    """os.mkdir that accepts an existing directory."""
    try:
        os.mkdir(path)
    except OSError as e:
        if not (e.args and e.args[0] == 17):
            raise


def _makedirs(path):
    """The parent directories of a file path."""
    i = path.find("/", 1)
    while i > 0:
        _mkdir(path[:i])
        i = path.find("/", i + 1)


def _remove(path, *suffixes):
    """Remove path+suffix for each suffix, as far as they exist."""
    for suffix in suffixes:
        try:
            os.remove(path + suffix)
        except OSError:
            pass


class FileOps:
    def __init__(self, console=None):
        self._buf = bytearray(CHUNK)
        self._win = b""  # fs.data's receive window (a bytearray), allocated on first use
        self._raw = 0  # bytes the pending fs.data window still expects
        self._console = console
        # [path, size, sha256 hex, file, hash, offset, deflate window bits or 0, bytes to transfer]
        self._put = None

    def register(self, console):
        self._console = console
        for op, method, auth in OPS:
            console.register(op, getattr(self, method), auth)

    async def ls(self, args):
        path = _path(args) if "path" in args else "/"
        start = arg(args, "start", int, 0, required=False)
        entries = []
        i = 0
        more = False
        try:
            for entry in os.ilistdir(path):
                if entry[0].endswith(PART) or (path.rstrip("/") + "/" + entry[0]) in PROTECTED:
                    continue
                if i >= start:
                    if len(entries) == _LS_PAGE:
                        more = True
                        break
                    is_dir = entry[1] == 0x4000
                    size = 0 if is_dir else (entry[3] if len(entry) > 3 else os.stat(path + "/" + entry[0])[6])
                    entries.append([entry[0], "d" if is_dir else "f", size])
                i += 1
        except OSError as e:
            raise _io_error(e, path)
        return {"entries": entries, "more": more}

    async def stat(self, args):
        path = _path(args)
        try:
            st = os.stat(path)
            if st[0] & 0x4000:
                return {"type": "d", "size": 0}
            size, digest = file_sha256(path, self._buf)
        except OSError as e:
            raise _io_error(e, path)
        return {"type": "f", "size": size, "sha256": digest}

    async def get(self, args):
        path = _path(args)
        off = arg(args, "off", int, 0, required=False)
        n = arg(args, "len", int, CHUNK, required=False)
        if off < 0 or not 0 < n <= CHUNK:
            raise CommandError("bad_args", "need off >= 0 and 0 < len <= %d" % CHUNK)
        mv = memoryview(self._buf)[:n]
        try:
            with open(path, "rb") as f:
                f.seek(off)
                got = f.readinto(mv) or 0
                eof = got < n or not f.read(1)
        except OSError as e:
            raise _io_error(e, path)
        return {"off": off, "data": binascii.b2a_base64(mv[:got]).rstrip().decode(), "eof": eof}

    def abort(self):
        t = self._put
        if t:
            self._put = None
            try:
                t[3].close()
            except OSError:
                pass
            _remove(t[0], PART, ZPART)

    async def put(self, args):
        path = _path(args)
        size = arg(args, "size", int)
        digest = arg(args, "sha256", str)
        z = arg(args, "z", int, 0, required=False)
        csize = arg(args, "csize", int, size, required=bool(z))
        if size < 0 or len(digest) != 64:
            raise CommandError("bad_args", "need size >= 0 and a 64-digit sha256")
        if z and not (9 <= z <= 12 and csize >= 0):
            raise CommandError("bad_args", "need 9 <= z <= 12 (deflate window bits) and csize >= 0")
        self.abort()
        try:
            f = open(path + (ZPART if z else PART), "wb")
        except OSError as e:
            raise _io_error(e, path)
        self._put = [path, size, digest.lower(), f, hashlib.sha256(), 0, z, csize if z else size]
        return {"chunk": PUT_CHUNK, "window": WINDOW}

    def _store(self, t, data):
        if t[5] + len(data) > t[7]:
            self.abort()
            raise CommandError("too_big", "more data than the announced size")
        try:
            t[3].write(data)
        except OSError as e:
            self.abort()
            raise _io_error(e, t[0])
        if not t[6]:
            t[4].update(data)
        t[5] += len(data)

    def _at(self, args):
        """The transfer in progress, checked to continue at args' offset."""
        t = self._put
        if t is None:
            raise CommandError("no_transfer", "no fs.put in progress")
        if arg(args, "off", int) != t[5]:
            raise CommandError("bad_offset", "expected offset %d" % t[5])
        return t

    async def data(self, args):
        """Announce `n` raw bytes at `off`; they follow the answer on the line."""
        t = self._at(args)
        off = t[5]
        n = arg(args, "n", int)
        if not 0 < n <= WINDOW or off + n > t[7]:
            raise CommandError("bad_args", "need 0 < n <= %d within the announced size" % WINDOW)
        if not self._win:
            self._win = bytearray(WINDOW)
        self._raw = n
        micropython.kbd_intr(-1)  # raw bytes may hold 0x03; off before the host may send them
        self._console.after = self._receive
        return {"off": off}

    async def _receive(self):
        n = self._raw
        mv = memoryview(self._win)
        got = 0
        port = self._console.port
        try:
            while got < n:
                k = await asyncio.wait_for_ms(port.readinto(mv[got:n]), _RAW_WAIT_MS)
                if not k:
                    break
                got += k
        except asyncio.TimeoutError:
            pass
        finally:
            micropython.kbd_intr(self._console.kbd_char)
        t = self._put
        if got < n or t is None:
            # The host learns of it from its next request (no_transfer) and keeps its old file.
            self._console.counters["rx_bad"] += 1
            self.abort()
            return
        try:
            self._store(t, mv[:n])
        except CommandError:
            pass

    async def write(self, args):
        t = self._at(args)
        self._store(t, _b64(arg(args, "data", str)))
        return {"off": t[5]}

    async def end(self, args):
        t = self._put
        if t is None:
            raise CommandError("no_transfer", "no fs.put in progress")
        path, size, digest, f, h, got, z, total = t
        self._put = None
        try:
            f.close()  # writes what the file still buffers: a full filesystem refuses it here
        except OSError as e:
            _remove(path, PART, ZPART)
            raise _io_error(e, path)
        if z:
            try:
                got = self._inflate(path, z, h, size) if got == total else -1
            except Exception:  # a corrupt stream: whatever inflating raises, the file is not taken
                got = -1
        if got != size or _hexdigest(h) != digest:
            _remove(path, PART, ZPART)
            raise CommandError("hash_mismatch", "received %d of %d bytes, SHA-256 differs" % (got, size))
        try:
            os.rename(path + PART, path)
        except OSError as e:
            raise _io_error(e, path)
        return {"size": size}

    def _inflate(self, path, z, h, size):
        import deflate

        buf = self._buf
        n_out = 0
        with open(path + ZPART, "rb") as src, open(path + PART, "wb") as dst:
            stream = deflate.DeflateIO(src, deflate.RAW, z)
            while True:
                n = stream.readinto(buf)
                if not n:
                    break
                chunk = memoryview(buf)[:n]
                dst.write(chunk)
                h.update(chunk)
                n_out += n
                if n_out > size:
                    break
        os.remove(path + ZPART)
        return n_out

    async def unpack(self, args):
        """Write the files of a pack (itself received with fs.put, so checked by SHA-256): entries of
        u8 path length, path, u32 little-endian size, data; a zero length ends it. Every file is
        written to its temporary name first and all are renamed at the end, in pack order."""
        pack = _path(args)
        done = []
        total = 0
        try:
            with open(pack, "rb") as f:
                while True:
                    n = f.read(1)
                    if not n or not n[0]:
                        break
                    path = _path({"path": f.read(n[0]).decode()})
                    size = int.from_bytes(f.read(4), "little")
                    _makedirs(path)
                    done.append(path)
                    left = size
                    with open(path + PART, "wb") as out:
                        while left:
                            k = f.readinto(memoryview(self._buf)[: min(left, CHUNK)])
                            if not k:
                                raise CommandError("bad_pack", "%s ends early" % path)
                            out.write(memoryview(self._buf)[:k])
                            left -= k
                    total += size
                if not n:
                    raise CommandError("bad_pack", "pack has no end mark")
            for path in done:
                os.rename(path + PART, path)
        except Exception as e:
            for path in done:
                _remove(path, PART)
            if isinstance(e, CommandError):
                raise
            raise CommandError("bad_pack", "%s: %s" % (pack, e))
        finally:
            _remove(pack, "")
        return {"files": len(done), "bytes": total}

    async def rm(self, args):
        path = _path(args)
        try:
            if os.stat(path)[0] & 0x4000:
                os.rmdir(path)
            else:
                os.remove(path)
        except OSError as e:
            raise _io_error(e, path)

    async def mkdir(self, args):
        path = _path(args)
        try:
            _mkdir(path)
        except OSError as e:
            raise _io_error(e, path)
