# The console port: the REPL UART (USB serial) through sys.stdin/sys.stdout, read without blocking
# the event loop.
import asyncio
import select
import sys


class StdioPort:
    def __init__(self, chunked=None):
        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._reader = asyncio.StreamReader(self._in)
        self._poll = select.poll()
        self._poll.register(self._in, select.POLLIN)
        self._one = bytearray(1)
        # On the unix port readinto() returns what is available; on a board it waits until the
        # buffer is full, so there the bytes already received are drained one at a time.
        self._chunked = sys.platform == "linux" if chunked is None else chunked

    async def readinto(self, buf):
        """Wait for input, then read what is available into buf (a bytearray); return the count."""
        mv = memoryview(buf)
        if self._chunked:
            n = await self._reader.readinto(mv)
            return n or 0
        n = await self._reader.readinto(mv[:1])
        one = self._one
        while n < len(buf) and self._poll.poll(0):
            if not self._in.readinto(one):
                break
            buf[n] = one[0]
            n += 1
        return n

    def write(self, data):
        self._out.write(data)
