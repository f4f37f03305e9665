# The boot-time side of updates over the air (otaboot.py) on a littlefs: the staged app
# switched in at boot, its boots counted while on trial, the previous app back after 3 boots
# without a health check or when its window passed, and a power cut at every flash operation of
# the switch and of the rollback leaving the old app or the new one, never a mix. (Each folder
# takes two blocks of a littlefs: the flash here has room for the staging area and old/.)
import otaboot
from fwtest import RamFlash, eq, mount

otaboot.ROOT = "/t"
OLD = {"app.json": b"v1", "boot.py": b"boot", "lib/spot/a.mpy": b"A1", "lib/spot/b.mpy": b"B1"}
NEW = {"app.json": b"v2", "boot.py": b"boot", "lib/spot/a.mpy": b"A2", "lib/spot/b.mpy": b"B1",
       "lib/spot/c.mpy": b"C2"}
STAGED = {"lib/spot/a.mpy": b"A2", "lib/spot/c.mpy": b"C2", "app.json": b"v2"}  # the changed files
PATHS = sorted(NEW)


def _write(path, data):
    otaboot.makedirs(path)
    with open(path, "wb") as f:
        f.write(data)


def _files():
    out = {}
    for p in PATHS:
        try:
            with open("/t/" + p, "rb") as f:
                out[p] = f.read()
        except OSError:
            pass
    return out


def _staged(flash=None):
    """A board running the old app with the new one staged (as spot.ota leaves it)."""
    if flash is None:
        flash = RamFlash(48)
    mount(flash, "/t", mkfs=True)
    for p, data in OLD.items():
        _write("/t/" + p, data)
    for p, data in STAGED.items():
        _write("/t/.ota/new/" + p, data)
    with open("/t/.ota/list", "w") as f:
        for p in STAGED:
            f.write("%s\t%d\n" % (p, 0 if p in OLD else 1))
    otaboot.save({"phase": "staged", "app": "v2", "prev": "v1", "label": "test"})
    return flash


def test_the_staged_app_is_switched_in_at_boot_and_counted_on_trial():
    flash = _staged()
    eq(_files(), OLD)
    st = otaboot.boot()
    eq((st["phase"], st["boots"], st["app"], st["prev"]), ("trial", 1, "v2", "v1"))
    eq(_files(), NEW)
    eq(otaboot.in_trial(), True)
    otaboot.passed()
    eq(otaboot.state()["phase"], "good")
    eq(otaboot.boot()["phase"], "good")  # a good app stays, boot after boot
    eq(_files(), NEW)
    for p in STAGED:  # the replaced files are gone
        eq(otaboot.exists("/t/.ota/old/" + p), False, p)
    flash.close()


def test_three_boots_without_a_health_check_bring_the_previous_app_back():
    flash = _staged()
    for n in (1, 2, 3):
        eq(otaboot.boot()["boots"], n)
        eq(_files(), NEW)
    st = otaboot.boot()  # the 4th boot: the new app had its 3
    eq((st["phase"], st["app"], st["prev"], st["rollbacks"]), ("rolledback", "v1", "v2", 1))
    eq("3 boots" in st["why"], True, st["why"])
    eq(_files(), OLD)  # the file the update added is gone too
    eq(otaboot.boot()["phase"], "rolledback")
    eq(_files(), OLD)
    flash.close()


def test_a_health_window_that_passed_rolls_back_at_the_next_boot():
    flash = _staged()
    otaboot.boot()
    otaboot.failed("no uplink in 5 minutes")
    eq(_files(), NEW)  # not yet: the board resets first
    st = otaboot.boot()
    eq((st["phase"], st["why"]), ("rolledback", "no uplink in 5 minutes"))
    eq(_files(), OLD)
    otaboot.passed()  # too late to count
    eq(otaboot.state()["phase"], "rolledback")
    flash.close()


def _walk(prepare, want_files, want_phase):
    """Cut the power after the k-th flash operation of one boot, for every k until a boot runs
    through; after each cut the next boot must leave want_files and want_phase."""
    flash = RamFlash(48)
    prepare(flash)
    base = flash.snapshot()
    k, cuts = 1, 0
    while True:
        base.copy_to(flash)
        flash.dead = False
        mount(flash, "/t")
        flash.ops = 0
        flash.cut_after = k
        try:
            otaboot.boot()
        except OSError:
            pass
        cut = flash.dead
        flash.dead = False
        flash.cut_after = 0
        mount(flash, "/t")  # the power is back: the next boot, whose guard runs before the app
        st = otaboot.boot()
        eq((_files(), st["phase"]), (want_files, want_phase), "cut at %d" % k)
        if not cut:
            break
        cuts += 1
        k += 1
    base.close()
    flash.close()
    return cuts


def test_a_power_cut_at_every_flash_operation_of_the_switch():
    eq(_walk(_staged, NEW, "trial") > 5, True, "the walk covered the writes")


def test_a_power_cut_at_every_flash_operation_of_the_rollback():
    def on_trial(flash):
        _staged(flash)
        for _ in range(3):
            otaboot.boot()

    eq(_walk(on_trial, OLD, "rolledback") > 5, True, "the walk covered the writes")
