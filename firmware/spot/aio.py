# asyncio helpers the port's asyncio lacks.
import asyncio


def readable(sock):
    """Await this to park the task in asyncio's poller until sock has data (what asyncio's streams
    do inside); MicroPython awaits generators."""
    yield asyncio.core._io_queue.queue_read(sock)  # pyright: ignore[reportAttributeAccessIssue]
