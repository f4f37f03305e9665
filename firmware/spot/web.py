# A small HTTP/1.0 server for the board's own pages: the set-up page of its access point
# (spot.setup) and a hotspot's status page (spot.hotspot.status). One connection at a time, one
# request per connection, read into a buffer allocated once (MAX_REQUEST bytes: request line,
# headers and body) within READ_MS of network time, answered, closed. What does not fit is
# answered 413, what cannot be read 400; no client stops the server.
import asyncio

from micropython import const

from spot.clock import ticks_diff
from spot.tcp import accept

MAX_REQUEST = const(1024)
READ_MS = const(5000)
REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 503: "Service Unavailable"}


class Request:
    def __init__(self, method, path, body):
        self.method = method
        self.path = path
        self.body = body


def listen(app, port):
    """A listening socket on the board's port for web pages (Parts.http_port); OSError if taken."""
    from spot.parts import Parts
    from spot.tcp import listen as listen_on

    return listen_on(Parts(app.board).http_port(port))


async def serve(sock, handle, counts, clock, buf=None):
    """Answer requests on sock for good: handle(Request) -> (status, content type, body bytes).
    counts: {"requests", "refused"} kept up to date; clock: the board's (spot.clock); buf: the
    request buffer (MAX_REQUEST bytes), allocated by the caller while the heap is in one piece."""
    buf = buf or bytearray(MAX_REQUEST)
    while True:
        conn = await accept(sock)
        counts["requests"] += 1
        try:
            conn.setblocking(False)
            req = await _read(conn, buf, clock)
            if isinstance(req, int):
                counts["refused"] += 1
                out = (req, "text/plain", REASONS[req].encode())
                if req == 413:  # read what is left first: closing on unread data resets the connection
                    await _drain(conn, buf, clock)
            else:
                out = handle(req)
            await _answer(conn, *out)
        except (OSError, MemoryError):  # the client went, or no heap for this answer: the next one
            counts["refused"] += 1
        finally:
            conn.close()


async def _read(conn, buf, clock):
    """The Request in buf, or the status to refuse it with."""
    mv = memoryview(buf)
    got = 0
    head = -1
    start = clock.ticks_ms()
    while True:
        if got == len(buf):
            return 413
        try:
            n = conn.readinto(mv[got:])
        except OSError:
            n = None
        if n == 0:
            return 400  # closed before a whole request
        if n is None:
            if ticks_diff(clock.ticks_ms(), start) > READ_MS:
                return 400
            await clock.sleep_ms(10)
            continue
        got += n
        if head < 0:
            head = bytes(mv[:got]).find(b"\r\n\r\n")
            if head < 0:
                continue
        length = _content_length(mv[:head])
        if length < 0:
            return 400
        if head + 4 + length > len(buf):
            return 413
        if got >= head + 4 + length:
            break
    line_end = bytes(mv[:head]).find(b"\r\n")
    parts = bytes(mv[: line_end if line_end >= 0 else head]).split()
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return 400
    try:
        return Request(parts[0].decode(), parts[1].decode(), bytes(mv[head + 4 : head + 4 + length]))
    except UnicodeError:
        return 400


async def _drain(conn, buf, clock, limit=16):
    """Read and drop what the client still sends, at most limit buffers or 200 ms of quiet."""
    quiet = clock.ticks_ms()
    while limit:
        try:
            n = conn.readinto(buf)
        except OSError:
            n = None
        if n == 0:
            return
        if n is None:
            if ticks_diff(clock.ticks_ms(), quiet) > 200:
                return
            await clock.sleep_ms(10)
            continue
        limit -= 1
        quiet = clock.ticks_ms()


def _content_length(head):
    for line in bytes(head).split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                n = int(value.strip())
            except ValueError:
                return -1
            return n if n >= 0 else -1
    return 0


async def _answer(conn, status, ctype, body):
    stream = asyncio.StreamWriter(conn, {})
    stream.write(b"HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nCache-Control: no-store\r\n"
                 b"Connection: close\r\n\r\n" % (status, REASONS.get(status, "").encode(), ctype.encode(), len(body)))
    stream.write(body)
    await stream.drain()


def form(body):
    """The fields of an application/x-www-form-urlencoded body: {name: text}; ValueError if bad."""
    out = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        out[_unquote(name)] = _unquote(value)
    return out


def _unquote(b):
    b = b.replace(b"+", b" ")
    out = bytearray()
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x25:  # %XX
            out.append(int(b[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    return out.decode()  # UnicodeError (a ValueError) if not UTF-8


def escape(text):
    """Text for an HTML page."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
