# What spot.node.Node uses of the clock and the console, for the node's firmware tests: a clock whose
# sleeps advance at once, and a console that keeps every event.
import asyncio


class Clock:
    def __init__(self):
        self.ms = 1000

    def ticks_ms(self):
        return self.ms

    def uptime_ms(self):
        return self.ms - 1000

    async def sleep_ms(self, ms):
        self.ms += max(0, ms)
        await asyncio.sleep_ms(0)


class Console:
    def __init__(self):
        self.events = []
        self.last_rx_ms = None

    def event(self, kind, data=None):
        self.events.append((kind, data))

    def of(self, kind):
        return [d for k, d in self.events if k == kind]
