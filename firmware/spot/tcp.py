# A TCP service's listening socket and its accept loop on asyncio's poller, shared by the update
# service (spot.otaapp) and the web pages (spot.web); loaded only by a board that serves one.
from spot.aio import readable


def listen(port):
    """A non-blocking TCP socket listening on port of every interface (OSError if it cannot)."""
    import socket

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(socket.getaddrinfo("0.0.0.0", port)[0][-1])
    s.listen(2)
    s.setblocking(False)
    return s


async def accept(s):
    """The next connection on listening socket s."""
    while True:
        await readable(s)  # pyright: ignore[reportGeneralTypeIssues]  (MicroPython awaits generators)
        try:
            return s.accept()[0]
        except OSError:
            pass
