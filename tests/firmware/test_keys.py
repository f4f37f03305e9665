# Device secrets: keys.set answers a key check value and never the key; NVS-backed store.
import asyncio

from fwtest import RamFlash, eq, mount, raises
from spot.config import Secrets
from spot.console import CommandError
from spot.keys import KeyOps, kcv
from spot.nvs import NvsSecrets

APPKEY = "2b7e151628aed2a6abf7158809cf4f3c"


class FakeNVS:
    """esp32.NVS: blobs by name; get_blob raises OSError for a missing key."""

    def __init__(self):
        self.blobs = {}
        self.commits = 0

    def set_blob(self, k, v):
        self.blobs[k] = bytes(v)

    def get_blob(self, k, buf):
        if k not in self.blobs:
            raise OSError(-4354)  # ESP_ERR_NVS_NOT_FOUND
        v = self.blobs[k]
        buf[: len(v)] = v
        return len(v)

    def erase_key(self, k):
        if k not in self.blobs:
            raise OSError(-4354)
        del self.blobs[k]

    def commit(self):
        self.commits += 1


def _run(coro):
    return asyncio.run(coro)


def _ops(store):
    return KeyOps(store)


def test_kcv_is_cmac_of_zero_block():
    # CMAC of one whole zero block is AES(K, 0 xor K1) = AES(K, K1); K1 is checked against
    # RFC 4493 in test_lorawan_crypto
    from binascii import hexlify, unhexlify

    import cryptolib
    from spot.lorawan.crypto import Key

    key = unhexlify(APPKEY)
    expected = cryptolib.aes(key, 1).encrypt(bytes(Key(key).k1))[:3]
    eq(kcv(key), hexlify(expected).decode())
    eq(kcv(key) == kcv(bytes(16)), False)


def test_set_answers_kcv_never_the_key():
    for store in (NvsSecrets(FakeNVS()), None):
        if store is None:
            point = mount(RamFlash(16), mkfs=True)
            store = Secrets(point + "/secrets.json")
        ops = _ops(store)
        out = _run(ops.set({"kind": "app_key", "value": APPKEY}))
        eq(out, {"kind": "app_key", "stored": True, "kcv": kcv(bytes.fromhex(APPKEY))})
        eq(APPKEY in repr(out), False)
        out = _run(ops.set({"kind": "wifi_password", "value": b"correct horse".hex()}))
        eq(out, {"kind": "wifi_password", "stored": True})
        lst = _run(ops.list({}))
        eq(lst, {"keys": {"app_key": kcv(bytes.fromhex(APPKEY)), "wifi_password": "set"}})
        eq(store.get("app_key"), bytes.fromhex(APPKEY))


def test_bad_key_input_changes_nothing():
    nvs = FakeNVS()
    ops = _ops(NvsSecrets(nvs))
    for args in ({"kind": "pin", "value": "00"}, {"kind": "app_key", "value": "zz"},
                 {"kind": "app_key", "value": "00" * 15}, {"kind": "admin_key", "value": "00" * 16},
                 {"kind": "wifi_password", "value": "00" * 4}, {"kind": "app_key"}):
        e = raises(CommandError, _run, ops.set(args))
        eq(e.code, "bad_args", repr(args))
    eq(nvs.blobs, {})


def test_nvs_store_names_and_clear():
    nvs = FakeNVS()
    s = NvsSecrets(nvs)
    eq((s.names(), s.has("app_key"), s.get("app_key")), ([], False, None))
    s.put("app_key", bytes(16))
    s.put("admin_key", bytes(range(32)))
    s.put("app_key", b"\x01" * 16)
    eq(s.names(), ["admin_key", "app_key"])
    eq(s.get("app_key"), b"\x01" * 16)
    eq(s.get("admin_key"), bytes(range(32)))
    s.clear()
    eq((s.names(), nvs.blobs), ([], {}))
