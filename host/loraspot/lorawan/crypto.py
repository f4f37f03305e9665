"""LoRaWAN 1.0.x cryptography in CPython: the twin of firmware/spot/lorawan/crypto.py, built on
`cryptography` (AES-128, AES-CMAC), used to check the firmware from the outside."""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

UP, DOWN = 0, 1


def _check(key: bytes) -> bytes:
    if len(key) != 16:
        raise ValueError("LoRaWAN keys are 16 bytes")
    return bytes(key)


def aes_encrypt(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(_check(key)), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def aes_decrypt(key: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(_check(key)), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(_check(key)))
    c.update(data)
    return c.finalize()


def _block(first: int, direction: int, devaddr: bytes, fcnt: int, last: int) -> bytes:
    return struct.pack("<B4xB4sIxB", first, direction, devaddr, fcnt & 0xFFFFFFFF, last)


def frame_mic(nwkskey: bytes, msg: bytes, direction: int, devaddr: bytes, fcnt: int) -> bytes:
    """4-byte MIC (wire order) over MHDR..FRMPayload; devaddr in wire (little-endian) order."""
    return cmac(nwkskey, _block(0x49, direction, devaddr, fcnt, len(msg)) + msg)[:4]


def crypt_payload(key: bytes, data: bytes, direction: int, devaddr: bytes, fcnt: int) -> bytes:
    """FRMPayload encryption/decryption (the same operation)."""
    stream = b"".join(aes_encrypt(key, _block(0x01, direction, devaddr, fcnt, i))
                      for i in range(1, (len(data) + 15) // 16 + 1))
    return bytes(a ^ b for a, b in zip(data, stream, strict=False))


def join_mic(appkey: bytes, msg: bytes) -> bytes:
    return cmac(appkey, msg)[:4]


def encrypt_join_accept(appkey: bytes, plain_phy: bytes) -> bytes:
    """What a join server sends: MHDR + AES-decrypt(AppKey, rest incl. MIC)."""
    if len(plain_phy) not in (17, 33):
        raise ValueError("Join-Accept must be 17 or 33 bytes")
    return plain_phy[:1] + aes_decrypt(appkey, plain_phy[1:])


def decrypt_join_accept(appkey: bytes, phy: bytes) -> bytes:
    if len(phy) not in (17, 33):
        raise ValueError(f"Join-Accept must be 17 or 33 bytes, got {len(phy)}")
    return phy[:1] + aes_encrypt(appkey, phy[1:])


def derive(appkey: bytes, appnonce_netid: bytes, devnonce: bytes) -> tuple[bytes, bytes]:
    """(NwkSKey, AppSKey); inputs in wire order."""
    tail = appnonce_netid + devnonce + bytes(7)
    return aes_encrypt(appkey, b"\x01" + tail), aes_encrypt(appkey, b"\x02" + tail)


def key_check_value(key: bytes) -> str:
    """KCV as the device answers it: the first 3 bytes of AES-CMAC of a zero block, in hex."""
    return cmac(key, bytes(16))[:3].hex()
