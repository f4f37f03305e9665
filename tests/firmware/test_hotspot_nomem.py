# The hotspot's radio loops outlive a MemoryError anywhere in a step: awaiting a coroutine makes an
# object, and on a full heap that raises where no step's own handler is, which once ended the task
# for good (a hotspot that accepted downlinks and never sent them, without a word). Each is counted
# (nomem) and the loop goes on.
import asyncio

from fwtest import eq
from hotspot_fakes import _hotspot, _packet, _txpk
from spot.hotspot import semtech


def test_the_receive_loop_goes_on_after_a_memory_error_in_its_await():
    src, hs = _hotspot()
    src.t = 1000000
    hs.tmst.advance()
    calls = [0]

    async def recv():
        calls[0] += 1
        if calls[0] == 1:
            raise MemoryError  # as making the coroutine or its first step would
        if calls[0] == 2:
            return _packet(b"\x40" + bytes(12))
        await asyncio.sleep_ms(100000)

    hs.radio.recv = recv

    async def main():
        task = asyncio.create_task(hs.rx_loop())
        for _ in range(100):
            await asyncio.sleep_ms(2)
            if len(hs.backlog):
                break
        task.cancel()

    asyncio.run(main())
    eq((calls[0], len(hs.backlog), hs.stats["rx"], hs.stats["nomem"]), (3, 1, 1, 1))


def test_the_transmit_loop_goes_on_after_a_memory_error_in_its_await():
    src, hs = _hotspot()
    src.t = 1000000
    hs.tmst.advance()

    class Flag:
        waits = 0

        def set(self):
            pass

        async def wait(self):
            Flag.waits += 1
            if Flag.waits == 1:
                raise MemoryError
            await asyncio.sleep_ms(1)

    hs.tx_flag = Flag()
    sent = []

    async def transmit(t, start):
        sent.append(t.freq)

    hs.transmit = transmit

    async def main():
        task = asyncio.create_task(hs.tx_loop())
        await asyncio.sleep_ms(20)
        eq(hs.stats["nomem"], 1)  # counted, and the loop still there:
        eq(hs.schedule(_txpk(imme=True)), semtech.NONE)
        src.t += 60000  # past its start
        for _ in range(100):
            await asyncio.sleep_ms(2)
            if sent:
                break
        task.cancel()

    asyncio.run(main())
    eq(sent, [868100000])


def test_the_backhauls_reader_goes_on_after_a_memory_error():
    # the Semtech backhaul's tasks run under the same guard: a MemoryError out of the reader's step
    # (here its read) is counted, and the next datagram (a PULL_ACK) is still read
    from hotspot_fakes import _server
    from spot.hotspot.udp import SemtechUdp

    _, hs = _hotspot()
    server, port = _server()
    link = SemtechUdp(hs, b"\x01\x02\x03\xff\xfe\x04\x05\x06", [("127.0.0.1", port)])
    up, down, _push = link.tasks()
    link.pull()
    _, gateway = server.recvfrom(64)
    read = link._recv
    fails = [1]

    def recv():
        if fails[0]:
            fails[0] = 0
            raise MemoryError
        return read()

    link._recv = recv

    async def main():
        task = asyncio.create_task(down)
        t = link.pull_token
        server.sendto(bytes([2, t >> 8, t & 0xFF, semtech.PULL_ACK]), gateway)  # taken by the MemoryError
        for _ in range(100):
            await asyncio.sleep_ms(2)
            if hs.stats["nomem"]:
                break
        link.pull()
        _, _ = server.recvfrom(64)
        t = link.pull_token
        server.sendto(bytes([2, t >> 8, t & 0xFF, semtech.PULL_ACK]), gateway)
        for _ in range(200):
            await asyncio.sleep_ms(2)
            if link.pull_token < 0:
                break
        task.cancel()

    asyncio.run(main())
    server.close()
    up.close()
    _push.close()
    eq((hs.stats["nomem"], link.pull_token), (1, -1))
