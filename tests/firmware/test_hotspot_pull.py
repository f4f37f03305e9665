# The Semtech UDP backhaul's downlink path: a hotspot that started before its server (or outlived
# its restart) opens it at the first PUSH_ACK rather than at the next keepalive. In a file of its
# own, so test_hotspot stays small.
from fwtest import eq
from hotspot_fakes import _hotspot, _server
from spot.hotspot import semtech


def _drain(server):
    """The datagrams the server has received and not read yet: [(identifier, token)]."""
    got = []
    while True:
        try:
            d = server.recv(1024)
        except OSError:
            return got
        got.append((d[3], (d[1] << 8) | d[2]))


def test_a_server_that_answers_again_gets_a_pull_data_at_once():
    # A hotspot that started before its server (or outlived its restart) sent its PULL_DATA into
    # the void; its next one is up to a keepalive away, and until then the server has no way back
    # to it: the Join-Accept for the uplink that showed the server is there would be lost. The
    # first PUSH_ACK after an unanswered PULL_DATA sends one at once (once per keepalive); one
    # whose PULL_DATA was answered sends none.
    src, hs = _hotspot()
    server, port = _server()
    server.setblocking(False)
    from spot.hotspot.udp import SemtechUdp

    link = SemtechUdp(hs, b"\x01\x02\x03\xff\xfe\x04\x05\x06", [("127.0.0.1", port)])
    link.resolve()
    link.step(hs.clock.ticks_ms())  # the first keepalive and stat: nobody answers them
    sent = _drain(server)
    eq(sorted(i for i, _ in sent), [semtech.PUSH_DATA, semtech.PULL_DATA])
    unanswered = link.pull_token
    eq(unanswered >= 0, True)
    src.t += 2000000  # 2 s on, well inside the keepalive: an uplink's PUSH_DATA is acknowledged
    link.push_token = 0x1234
    link.handle_up(bytes([2, 0x12, 0x34, semtech.PUSH_ACK]), 4)
    again = _drain(server)
    eq(again, [(semtech.PULL_DATA, link.pull_token)])
    eq(link.pull_token != unanswered, True)
    eq(link.misses, 0)  # superseded, not counted as a miss
    # a second PUSH_ACK before the PULL_ACK: no second PULL_DATA in this keepalive
    link.push_token = 0x1235
    link.handle_up(bytes([2, 0x12, 0x35, semtech.PUSH_ACK]), 4)
    eq(_drain(server), [])
    # the PULL_ACK opens the path; the regular keepalive comes at its time, not before
    t = link.pull_token
    link.handle(bytes([2, t >> 8, t & 0xFF, semtech.PULL_ACK]), 4)
    eq(link.pull_token, -1)
    link.push_token = 0x1236
    link.handle_up(bytes([2, 0x12, 0x36, semtech.PUSH_ACK]), 4)
    link.step(hs.clock.ticks_ms())
    eq(_drain(server), [])
    src.t += 10000000  # the keepalive after the early PULL_DATA
    link.step(hs.clock.ticks_ms())
    eq([i for i, _ in _drain(server)], [semtech.PULL_DATA])
    server.close()
