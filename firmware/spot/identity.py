# The board's identity: an Ed25519 key pair made on the board (keys.identity, get), whose private
# half never leaves it; the public half is read at provisioning and kept in the inventory. Loaded
# only when the command is used (spot.keys), so its names stay out of the table entered at boot.
import binascii

from spot.console import CommandError, arg

IDENTITY = "identity_key"  # the private half (secrets store), made here, never set from outside
IDENTITY_PUB = "identity_pub"  # the public half, kept beside it (answering needs no signature)


def get(ops, args):
    """The public key of the board's Ed25519 identity. With "entropy" (hex, at least 16 bytes
    from the host, over the console's authenticated path) the key is made first when there is
    none (with "replace", instead of the one there: a new identity, which starts a new chain
    of receipts): the chip's RNG, read with the Wi-Fi radio on, and the host's bytes, mixed by
    SHA-512. The private half never leaves the board."""
    made = False
    if "entropy" in args:
        try:
            host = binascii.unhexlify(arg(args, "entropy", str))
        except ValueError:
            raise CommandError("bad_args", "entropy must be hex")
        if len(host) < 16:
            raise CommandError("bad_args", "entropy must be at least 16 bytes")
        replace = bool(args.get("replace"))
        if replace and ops.authorize is not None and ops.secrets.has(IDENTITY):
            ops.authorize("keys.identity", args)
        if replace or not ops.secrets.has(IDENTITY):
            from spot import ed25519
            from spot.sha512 import sha512

            seed = sha512(b"loraspot identity" + _chip_random(32) + host).digest()[:32]
            pub = ed25519.public_key(seed)
            ops.secrets.put(IDENTITY, seed)
            ops.secrets.put(IDENTITY_PUB, pub)
            seed = None
            made = True
    pub = ops.secrets.get(IDENTITY_PUB)
    if not pub:
        raise CommandError("no_identity", "the board has no identity key yet (loraspot provision makes it)")
    return {"public": binascii.hexlify(pub).decode(), "made": made}


def _chip_random(n):
    """n bytes of the chip's RNG. The ESP32's is truly random only while Wi-Fi or Bluetooth runs,
    so the Wi-Fi station is switched on for the read where it was off (then off again); the
    virtual board reads the host's."""
    import os

    from spot.board import _vboard  # pyright: ignore[reportPrivateUsage]

    wlan = was = None
    if _vboard is None:
        try:
            import network  # pyright: ignore[reportMissingImports]

            wlan = network.WLAN(network.STA_IF)
            was = wlan.active()
            wlan.active(True)
        except (ImportError, OSError):
            wlan = None
    try:
        return os.urandom(n)
    finally:
        if wlan is not None and not was:
            wlan.active(False)
