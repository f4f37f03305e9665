# make bench: heap allocated per received packet in the radio drivers' receive path, measured with
# gc.mem_alloc() deltas over 1000 packets under the 112K heap, against the chip models.
# Prints one JSON line per driver. Run by bench/radio.py.
import asyncio
import gc
import json

from fakehw import FakeSPI
from spot.clock import Clock
from sx1262_model import SX1262Model
from sx1276_model import SX1276Model

N = 1000
PAYLOAD = bytes(range(51))


def measure(name, radio, model, deliver, line):
    radio.configure(freq=868100000, sf=7)
    radio.start_receive()
    asyncio.new_event_loop()  # the path measured by hand below; the loop is measured after
    radio._rx_task = None
    isr = drv = 0
    handler = line._isr
    for i in range(N):
        line.pin.handler = None  # deliver without the IRQ; run the handler measured
        deliver()
        gc.collect()
        a = gc.mem_alloc()
        handler(line.pin)
        b = gc.mem_alloc()
        radio.service()
        p = radio.take()
        c = gc.mem_alloc()
        isr += b - a
        drv += c - b
        if p is None or p.length != len(PAYLOAD):
            raise SystemExit("packet %d lost" % i)
    line.pin.handler = handler

    # the same through asyncio: the receive task woken by the ThreadSafeFlag, the consumer by
    # another; asyncio's poller allocates per wait and each `await recv()` makes a coroutine
    async def loop():
        radio.start_receive()
        await asyncio.sleep_ms(1)
        total = 0
        for _ in range(100):
            gc.collect()
            deliver()  # the chip model's own allocations stay outside the figure
            a = gc.mem_alloc()
            p = await radio.recv()
            total += gc.mem_alloc() - a
            if p.length != len(PAYLOAD):
                raise SystemExit("lost")
        radio.standby()
        return total

    wake = asyncio.run(loop())
    asyncio.new_event_loop()
    print(json.dumps({"driver": name, "packets": N, "isr_bytes": isr, "driver_bytes": drv,
                      "per_packet": (isr + drv) / N, "with_asyncio_per_packet": wake / 100}))


def deadline_error(name, radio, model, n=50):
    """How late transmit_at starts the chip after its deadline (sleep, then spin)."""
    from spot.clock import ticks_add, ticks_diff

    async def go():
        worst = total = 0
        for _ in range(n):
            deadline = ticks_add(radio.clock.ticks_us(), 20000)
            start, _end = await radio.transmit_at(PAYLOAD, deadline)
            model.tx_frames.clear()
            late = ticks_diff(start, deadline)
            total += late
            worst = max(worst, late)
        return total / n, worst

    mean, worst = asyncio.run(go())
    asyncio.new_event_loop()
    print(json.dumps({"driver": name, "deadline_mean_us": mean, "deadline_worst_us": worst, "transmissions": n}))


def main():
    from spot.radio.sx126x import SX126x
    from spot.radio.sx127x import SX127x

    m = SX1276Model()
    r = SX127x(FakeSPI(m), m.pins(), Clock(), {"chip": "sx1276", "band_mhz": [862, 1020], "max_power_dbm": 20})
    measure("sx127x", r, m, lambda: m.deliver(PAYLOAD), r.dio0)
    deadline_error("sx127x", r, m)
    del r, m
    gc.collect()
    m = SX1262Model()
    prof = {"chip": "sx1262", "band_mhz": [862, 1020], "max_power_dbm": 22, "tcxo_volts": 1.8, "dio2_rf_switch": True}
    r = SX126x(FakeSPI(m), m.pins(), Clock(), prof)
    measure("sx126x", r, m, lambda: m.deliver(PAYLOAD), r.dio1)
    deadline_error("sx126x", r, m)


main()
