# File commands of the console: ls, stat, get (chunked reads), put (chunked, SHA-256 checked,
# written to a temporary file and renamed into place, so a cut transfer never leaves a partial file).
import binascii
import hashlib
import os

from micropython import const

from spot.console import CommandError, arg

CHUNK = const(512)  # data bytes per fs.get answer (base64 keeps the frame under MAX_FRAME)
PUT_CHUNK = const(135)  # data bytes per fs.write: its frame stays within MAX_REQUEST (256)
_LS_PAGE = const(24)
PART = ".part"
PROTECTED = ("/secrets.json", "/secrets.json.bak", "/secrets.json.tmp")


def _path(args):
    path = arg(args, "path", str)
    if not path.startswith("/") or "\\" in path or "/../" in path + "/" or len(path) > 96:
        raise CommandError("bad_args", "path must be absolute, without '..', at most 96 characters")
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
    # MicroPython's a2b_base64 skips characters outside the alphabet instead of failing, so the
    # decoded length is checked against the text's.
    n = len(text)
    try:
        data = binascii.a2b_base64(text)
    except ValueError:
        data = None
    if data is None or n % 4 or len(data) != n // 4 * 3 - text[-2:].count("="):
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


def sweep_parts(root="/"):
    """Remove temporary files of transfers that a reset or power cut interrupted."""
    for entry in os.ilistdir(root):
        name, kind = entry[0], entry[1]
        path = (root.rstrip("/") + "/" + name) if root != "/" else "/" + name
        if kind == 0x4000:
            sweep_parts(path)
        elif name.endswith(PART):
            os.remove(path)


# console command, method, needs admin authentication once locked
OPS = (("fs.ls", "ls", False), ("fs.stat", "stat", False), ("fs.get", "get", False), ("fs.put", "put", True),
       ("fs.write", "write", True), ("fs.end", "end", True), ("fs.rm", "rm", True), ("fs.mkdir", "mkdir", True))


class FileOps:
    def __init__(self):
        self._buf = bytearray(CHUNK)
        self._put = None  # [path, size, sha256 hex, file, hash, offset]

    def register(self, console):
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
        if self._put:
            try:
                self._put[3].close()
                os.remove(self._put[0] + PART)
            except OSError:
                pass
            self._put = None

    async def put(self, args):
        path = _path(args)
        size = arg(args, "size", int)
        digest = arg(args, "sha256", str)
        if size < 0 or len(digest) != 64:
            raise CommandError("bad_args", "need size >= 0 and a 64-digit sha256")
        self.abort()
        try:
            f = open(path + PART, "wb")
        except OSError as e:
            raise _io_error(e, path)
        self._put = [path, size, digest.lower(), f, hashlib.sha256(), 0]
        return {"chunk": PUT_CHUNK}

    async def write(self, args):
        t = self._put
        if t is None:
            raise CommandError("no_transfer", "no fs.put in progress")
        off = arg(args, "off", int)
        if off != t[5]:
            raise CommandError("bad_offset", "expected offset %d" % t[5])
        data = _b64(arg(args, "data", str))
        if t[5] + len(data) > t[1]:
            self.abort()
            raise CommandError("too_big", "more data than the announced size")
        try:
            t[3].write(data)
        except OSError as e:
            self.abort()
            raise _io_error(e, t[0])
        t[4].update(data)
        t[5] += len(data)
        return {"off": t[5]}

    async def end(self, args):
        t = self._put
        if t is None:
            raise CommandError("no_transfer", "no fs.put in progress")
        self._put = None
        path, size, digest, f, h, got = t
        f.close()
        if got != size or _hexdigest(h) != digest:
            os.remove(path + PART)
            raise CommandError("hash_mismatch", "received %d of %d bytes, SHA-256 differs" % (got, size))
        try:
            os.rename(path + PART, path)
        except OSError as e:
            raise _io_error(e, path)
        return {"size": size}

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
            os.mkdir(path)
        except OSError as e:
            if not (e.args and e.args[0] == 17):
                raise _io_error(e, path)
