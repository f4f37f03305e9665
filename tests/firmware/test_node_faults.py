# A node whose radio is absent, stops answering or times out (the SX127x driver on the register
# model of tests/firmware/sx1276_model.py): the fault is a state the node reports, counts and
# retries with back-off, never an exception that ends its task (which would reset the board).
import asyncio

from fakehw import FakeSPI
from fwtest import eq, fresh_flash
from nodefakes import Clock, Console
from spot.clock import Clock as ChipClock
from spot.config import Config
from spot.lorawan import region
from spot.lorawan.mac import MacState
from spot.lorawan.store import Counters
from spot.node import Node
from spot.radio import RETRY_MS
from spot.radio.sx127x import SX127x
from sx1276_model import SX1276Model

PROFILE = {"chip": "sx1276", "band_mhz": [862, 1020], "max_power_dbm": 20, "pa_boost": True}


class Stack:
    """What Node uses of the LoRaWAN stack, sending each uplink through the real radio driver."""

    def __init__(self, plan):
        self.region = plan
        self.mac = MacState(plan)
        self.mac.dr = 5
        self.counters = Counters("/f/lorawan.json").load()
        self.counters.new_session("01020304")
        self.session = object()
        self.pending_answers = b""
        self.stats = {"uplinks": 0}
        self.last_snr = 0
        self.radio = None
        self.sent = []

    def set_radio(self, radio):
        self.radio = radio

    async def send(self, fport, payload, confirmed=False):
        self.radio.configure(freq=868100000, sf=7, bw=125000, power=14)
        await self.radio.transmit_at(bytes(payload))
        self.sent.append(bytes(payload))
        self.stats["uplinks"] += 1
        r = type("R", (), {})()
        r.fcnt, r.ack, r.downlink, r.window, r.airtime_us, r.freq, r.dr = len(self.sent), False, None, 0, 41216, \
            868100000, 5
        return r


class Battery:
    NAME = "battery"

    async def read(self):
        return (4.05,)


class Chip:
    """The radio module on the board: swapped, pulled or hung by the test."""

    def __init__(self, model):
        self.model = model
        self.opened = 0

    def open(self):
        self.opened += 1
        m = self.model
        return SX127x(FakeSPI(m), m.pins(), ChipClock(), PROFILE)


def _node(chip):
    fresh_flash("/f")
    config = Config("/f/config.json").load()
    config.set({"role": "node", "retries": 0})
    lw = Stack(region.get("EU868"))
    n = Node(None, config, Clock(), Console(), lw, [Battery()])
    n.open_radio = chip.open
    return n, lw


def _run(coro):
    return asyncio.run(coro)


def test_an_absent_radio_is_reported_retried_with_back_off_and_uplinks_resume():
    chip = Chip(SX1276Model(version=0x00))  # nothing on the SPI bus: RegVersion reads 0x00
    n, lw = _node(chip)
    eq(n.radio_status(), "starting")

    async def go():
        task = asyncio.create_task(n.cycle())
        while chip.opened < 3:  # three failed openings, each followed by a longer wait
            await asyncio.sleep_ms(0)
        chip.model = SX1276Model()  # the radio is fitted (or its wiring fixed): the next opening works
        await task

    _run(go())
    faults = [e for e in n.console.of("radio") if not e["ok"]]
    eq(len(faults), 3)
    eq("RegVersion reads 0x00" in faults[0]["error"], True, faults[0]["error"])
    eq([e["retry_ms"] for e in faults], [RETRY_MS, 2 * RETRY_MS, 4 * RETRY_MS])
    eq(n.console.of("radio")[-1], {"ok": True, "chip": "sx1276"})
    eq(n.radio_faults, 3)
    eq(n.radio_status(), "ok")
    eq(len(lw.sent), 1)  # the uplink went out once the radio answered
    eq(n.console.of("uplink")[-1]["fcnt"], 1)


def test_a_radio_that_times_out_is_dropped_reopened_and_the_uplinks_resume():
    chip = Chip(SX1276Model())
    n, lw = _node(chip)
    _run(n.cycle())
    eq(len(lw.sent), 1)
    chip.model.hung = True  # no TxDone ever: the driver times out
    _run(n.cycle())
    up = n.console.of("uplink")[-1]
    eq("error" in up, True, up)
    eq(n.radio_status().startswith("fault: "), True, n.radio_status())
    eq(lw.radio, None)  # dropped: the next uplink opens (and resets) the chip again
    eq(n.radio_faults, 1)
    chip.model.hung = False
    _run(n.cycle())
    eq(len(lw.sent), 2)
    eq(chip.opened, 2)
    eq(n.radio_status(), "ok")


def test_a_radio_that_stops_answering_on_spi_is_retried_until_it_answers_again():
    chip = Chip(SX1276Model())
    n, lw = _node(chip)
    _run(n.cycle())
    chip.model.hung = True
    _run(n.cycle())  # times out: dropped
    chip.model = SX1276Model(version=0x00)  # and now the chip is gone from the bus altogether

    async def go():
        task = asyncio.create_task(n.cycle())
        while chip.opened < 2:  # one failed opening
            await asyncio.sleep_ms(0)
        chip.model = SX1276Model()
        await task

    _run(go())
    eq(len(lw.sent), 2)
    eq(n.radio_faults, 2)  # the timeout, then one failed opening
    eq(n.radio_status(), "ok")

