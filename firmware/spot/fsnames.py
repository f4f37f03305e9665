# What the boot needs of the file commands, without loading them: their names (registered
# lazily by spot.app) and the sweep of temporary files that an interrupted transfer left.
import os

PART = ".part"
PROTECTED = ("/secrets.json", "/secrets.json.bak", "/secrets.json.tmp", "/lock", "/lock.part")
LOCK_PATH = "/lock"  # b"L": admin authentication on; b"P": and the REPL off (production)

# console command, method, needs admin authentication once locked (the writes, data and end
# of a transfer belong to the fs.put that opened it, which needed it)
OPS = (("fs.ls", "ls", False), ("fs.stat", "stat", False), ("fs.get", "get", False), ("fs.put", "put", True),
       ("fs.write", "write", False), ("fs.data", "data", False), ("fs.end", "end", False), ("fs.rm", "rm", True),
       ("fs.mkdir", "mkdir", True), ("fs.unpack", "unpack", True))


def sweep_parts(root="/"):
    """Remove temporary files of transfers that a reset or power cut interrupted."""
    for entry in os.ilistdir(root):
        name, kind = entry[0], entry[1]
        path = (root.rstrip("/") + "/" + name) if root != "/" else "/" + name
        if kind == 0x4000:
            sweep_parts(path)
        elif name.endswith(PART):
            os.remove(path)
