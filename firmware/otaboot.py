# Updates over the air, the part that runs at every boot before the app (main.py calls boot()
# before it imports spot.app): the switch to an app staged by spot.ota, the count of the boots of
# an app on trial, and the way back to the previous app. This module (lib/otaboot.mpy, outside
# the spot package and needing nothing of it), boot.py and main.py are the guard: an update over
# the air never replaces them (a broken guard could not roll back).
#
# On flash: /.ota/state.json (its phase, saved atomically with a fallback copy), /.ota/list (a
# line per staged file: its path, a tab, 1 if the update adds it), /.ota/new/<path> (the staged
# files), /.ota/old/<path> (the files the switch replaced). Every step is a rename
# (atomic on littlefs) that can be done again after a power cut, so a cut at any point leaves the
# old or the new app, never a mix: "switching" and "rolling" are finished at the next boot.
#   staged -> switching -> trial -> good                        (the new app passed its health check)
#                          trial -> rollback -> rolling -> rolledback  (3 boots without it, or its window)
import json
import os

ROOT = ""  # where the board's file system is (a test mounts one elsewhere)
DIR = "/.ota"
MAX_TRIAL_BOOTS = 3  # boots an app on trial may take without passing its health check
GUARD = ("boot.py", "main.py", "lib/otaboot.mpy")


# exists and remove as in spot.atomic: the guard needs nothing of the spot package
def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def version_of(path):
    """An app's version: the first 12 hex digits of its manifest's SHA-256 ("" without one)."""
    import binascii
    import hashlib

    h = hashlib.sha256()
    buf = bytearray(256)
    try:
        with open(path, "rb") as f:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                h.update(memoryview(buf)[:n])
    except OSError:
        return ""
    return binascii.hexlify(h.digest()).decode()[:12]


def state():
    """The update's state (a dict), or None when no update was ever staged: state.json, or its
    previous version when a power cut came in the middle of replacing it."""
    base = ROOT + DIR + "/state.json"
    for path in (base, base + ".bak"):
        try:
            with open(path) as f:
                st = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(st, dict):
            return st
    return None


def save(st):
    """Replace the state atomically (as spot.atomic does: the old one kept as .bak until then)."""
    _mkdir(ROOT + DIR)
    base = ROOT + DIR + "/state.json"
    with open(base + ".tmp", "w") as f:
        json.dump(st, f)
    if exists(base):
        remove(base + ".bak")
        os.rename(base, base + ".bak")
    os.rename(base + ".tmp", base)


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass


def makedirs(path):
    """The parent folders of file path `path` (an absolute path)."""
    i = path.find("/", len(ROOT) + 1)
    while i > 0:
        _mkdir(path[:i])
        i = path.find("/", i + 1)


def entries():
    """(path, added) of each staged file, read a line at a time (a whole library is 70 files)."""
    try:
        f = open(ROOT + DIR + "/list")
    except OSError:
        return
    with f:
        while True:
            line = f.readline()
            if not line:
                return
            path, _, added = line.rstrip("\n").partition("\t")
            yield path, added == "1"


def _move(src, dst):
    makedirs(dst)
    os.rename(src, dst)


def _switch(st):
    """Put the staged files in place, each replaced file kept under old/ first."""
    if st["phase"] != "switching":
        st["phase"] = "switching"
        save(st)
    for path, _added in entries():
        new, cur, old = ROOT + DIR + "/new/" + path, ROOT + "/" + path, ROOT + DIR + "/old/" + path
        if not exists(new):
            continue  # moved in before a power cut
        if exists(cur) and not exists(old):
            _move(cur, old)
        _move(new, cur)
    st["phase"], st["boots"] = "trial", 0
    save(st)


def _roll_back(st):
    """The replaced files back from old/, the ones the update added removed."""
    if st["phase"] != "rolling":
        st["phase"] = "rolling"
        save(st)
    for path, added in entries():
        cur, old = ROOT + "/" + path, ROOT + DIR + "/old/" + path
        if exists(old):
            _move(old, cur)
        elif added:
            remove(cur)
    st["phase"], st["app"], st["prev"] = "rolledback", st.get("prev"), st.get("app")
    st["rollbacks"] = st.get("rollbacks", 0) + 1
    save(st)


def settle():
    """A write operation before anything is read (removing a file that is not there: it writes
    nothing once the file system is consistent). After a power cut in the middle of a rename
    between folders, littlefs hides a neighbour of the moved entry in its source folder from reads
    until the first write operation completes the move (found by tests/firmware/test_otaboot.py:
    a whole folder of staged files seemed gone)."""
    remove(ROOT + DIR + "/settle")


def boot():
    """At every boot, before the app is imported: finish a switch or a rollback, count a boot of
    an app on trial and roll back after MAX_TRIAL_BOOTS. Returns the state (or None)."""
    settle()
    st = state()
    if st is None:
        return None
    phase = st.get("phase")
    fw = st.get("firmware")
    if fw and phase in ("trial", "rollback"):
        # MicroPython itself on trial in the other app slot: the bootloader boots it once, and
        # goes back to the previous one at any reset before it is confirmed (passed())
        running = slot()
        if running != fw["slot"]:
            st["phase"], st["rollbacks"] = "rolledback", st.get("rollbacks", 0) + 1
            st["why"] = st.get("why") or ("MicroPython in %s was not confirmed before a reset: the bootloader "
                                          "went back to %s" % (fw["slot"], running))
            save(st)
        return st
    if phase in ("staged", "switching"):
        _switch(st)
        phase = "trial"
    if phase == "trial":
        st["boots"] = st.get("boots", 0) + 1
        if st["boots"] > MAX_TRIAL_BOOTS:
            st["why"] = "the new app did not pass its health check in %d boots" % MAX_TRIAL_BOOTS
            phase = "rollback"
        else:
            save(st)
    if phase in ("rollback", "rolling"):
        _roll_back(st)
    return st


def slot():
    """The app slot MicroPython runs from (None on an image with one)."""
    try:
        import esp32

        return esp32.Partition(esp32.Partition.RUNNING).info()[4]  # pyright: ignore[reportArgumentType]
    except (ImportError, AttributeError, OSError, ValueError):
        return None


def in_trial():
    st = state()
    return st is not None and st.get("phase") == "trial"


def passed():
    """The app on trial passed its health check: it stays; the replaced files are removed."""
    st = state()
    if st is None or st.get("phase") != "trial":
        return
    if st.get("firmware"):  # MicroPython itself: confirmed to the bootloader, kept for good
        import esp32

        esp32.Partition.mark_app_valid_cancel_rollback()
    st["phase"] = "good"
    save(st)
    for path, _added in entries():
        remove(ROOT + DIR + "/old/" + path)


def failed(why):
    """The app on trial did not pass its health check in its window: the previous app comes back
    at the next boot (the caller resets the board)."""
    st = state()
    if st is None or st.get("phase") != "trial":
        return
    st["phase"], st["why"] = "rollback", why
    save(st)
