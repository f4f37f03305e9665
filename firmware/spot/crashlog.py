# Bounded log of unhandled exceptions on flash; hello reports the newest entry.
import io
import sys

from spot.config import AtomicJson

PATH = "/crash.json"
_KEEP = 3
_TB_MAX = 600


def record(exc, boot_id, uptime_ms, path=PATH):
    s = io.StringIO()
    # the stubs miss that print_exception takes a StringIO and StringIO.getvalue exists
    sys.print_exception(exc, s)  # pyright: ignore[reportArgumentType]
    tb = s.getvalue()  # pyright: ignore[reportAttributeAccessIssue]
    if len(tb) > _TB_MAX:
        tb = "..." + tb[-_TB_MAX:]
    store = AtomicJson(path)
    old = store.load()[0] or {}
    entries = old.get("entries", [])[-(_KEEP - 1) :]
    entries.append({"boot": boot_id, "up_ms": uptime_ms, "error": "%s: %s" % (type(exc).__name__, exc), "tb": tb})
    store.save({"entries": entries})


def last(path=PATH):
    data = AtomicJson(path).load()[0]
    if not data or not data.get("entries"):
        return None
    e = data["entries"][-1]
    return {"boot": e.get("boot"), "error": e.get("error"), "up_ms": e.get("up_ms")}
