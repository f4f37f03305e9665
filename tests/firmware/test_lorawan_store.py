# LoRaWAN counters across power cuts at every flash operation: FCntUp strictly increasing,
# DevNonce never repeated.
from fwtest import RamFlash, eq, mount, raises
from spot.lorawan.store import Counters

PATH = "/t/lorawan.json"


def _fresh():
    flash = RamFlash(16)
    mount(flash, "/t", mkfs=True)
    return flash


def test_block_reservation_bounds_writes():
    _fresh()
    c = Counters(PATH, block=16).load()
    got = [c.next_fcnt_up() for _ in range(40)]
    eq(got, list(range(40)))
    eq(c.writes, 3, "one write per 16 uplinks")
    c2 = Counters(PATH, block=16).load()
    eq(c2.next_fcnt_up(), 48, "resumes at the reservation after a restart")


def _scenario(c, used_up, used_nonce):
    """A sequence of joins and uplinks; records every value handed out."""
    used_nonce.append(c.next_devnonce())
    c.new_session("0a0b0c0d")
    for _ in range(5):
        used_up.append(c.next_fcnt_up())
    used_nonce.append(c.next_devnonce())
    for _ in range(3):
        used_up.append(c.next_fcnt_up())


def test_power_cut_at_every_write_never_reuses_a_counter():
    flash = _fresh()
    c = Counters(PATH, block=4).load()
    c.new_session("01020304")
    for _ in range(6):
        c.next_fcnt_up()
    base = flash.snapshot()
    k = 1
    cuts = 0
    while True:
        base.copy_to(flash)
        flash.dead = False
        mount(flash, "/t")
        before = Counters(PATH, block=4).load()
        floor_up, floor_nonce = before.fcnt_up, before.devnonce
        flash.ops = 0
        flash.cut_after = k
        used_up, used_nonce = [], []
        c = Counters(PATH, block=4).load()
        try:
            _scenario(c, used_up, used_nonce)
        except OSError:
            pass
        cut = flash.dead
        flash.dead = False
        mount(flash, "/t")
        after = Counters(PATH, block=4).load()
        # whatever was handed out before the cut is never handed out again
        if after.devnonce < floor_nonce or (used_nonce and after.devnonce <= max(used_nonce)):
            raise AssertionError("cut at %d: DevNonce %d after using %r" % (k, after.devnonce, used_nonce))
        if after.devaddr == "0a0b0c0d":  # the new session reached flash
            if used_up and after.fcnt_up <= max(used_up):  # fcnt_up: what next_fcnt_up() hands out
                raise AssertionError("cut at %d: FCntUp %d after using %r" % (k, after.fcnt_up, used_up))
        elif (after.devaddr, after.fcnt_up < floor_up) != ("01020304", False):
            raise AssertionError("cut at %d: old session damaged: %r %d" % (k, after.devaddr, after.fcnt_up))
        if not cut:
            break
        cuts += 1
        k += 1
    base.close()
    eq(cuts > 5, True, "walk covered the writes")


def test_devnonce_exhaustion_is_an_error():
    _fresh()
    c = Counters(PATH).load()
    c.devnonce = 0x10000
    raises(ValueError, c.next_devnonce)


def teardown_module():
    _fresh()
