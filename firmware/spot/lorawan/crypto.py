# LoRaWAN 1.0.x cryptography on AES-128 ECB (cryptolib.aes mode 1, all an ESP32 offers):
# AES-CMAC (RFC 4493), frame MICs with the B0 block, FRMPayload encryption with A_i blocks
# (a counter mode built from single-block encryptions), join MICs, Join-Accept "decryption" by
# encryption and session key derivation (LoRaWAN 1.0.3 sections 4.3.3, 4.4, 6.2.5, 6.2.5).
# Scratch blocks are allocated once per key object; 32-bit values go through buffers.
import cryptolib
from micropython import const

_ECB = const(1)
UP = const(0)
DOWN = const(1)


def _shift_xor(src, dst):
    """dst = src << 1 (as a 128-bit number), xor 0x87 into the last byte when the top bit fell off."""
    carry = 0
    for i in range(15, -1, -1):
        b = src[i]
        dst[i] = ((b << 1) & 0xFF) | carry
        carry = b >> 7
    if src[0] & 0x80:
        dst[15] ^= 0x87


class Key:
    """One AES-128 key with its CMAC subkeys and scratch blocks."""

    def __init__(self, key):
        if len(key) != 16:
            raise ValueError("LoRaWAN keys are 16 bytes")
        self._aes = cryptolib.aes(bytes(key), _ECB)
        self._x = bytearray(16)
        self._y = bytearray(16)
        self._blk = bytearray(16)
        self.k1 = bytearray(16)
        self.k2 = bytearray(16)
        self._aes.encrypt(bytes(16), self._y)  # L = AES(K, 0^128)
        _shift_xor(self._y, self.k1)
        _shift_xor(self.k1, self.k2)

    def encrypt_block(self, src, dst):
        self._aes.encrypt(src, dst)

    def cmac(self, head, msg, out=None, n=-1):
        """AES-CMAC over head + msg[:n] (head: None or a 16-byte block such as B0; n -1: all of
        msg). Returns the 16-byte tag in `out` (or a new bytearray)."""
        x, blk = self._x, self._blk
        for i in range(16):
            x[i] = 0
        if n < 0:
            n = len(msg)
        total = n + (16 if head is not None else 0)
        blocks = (total + 15) // 16 or 1
        pos = 0  # position in the virtual message head + msg
        for b in range(blocks):
            last = b == blocks - 1
            for i in range(16):
                j = pos + i
                if head is not None:
                    v = head[j] if j < 16 else (msg[j - 16] if j - 16 < n else -1)
                else:
                    v = msg[j] if j < n else -1
                if v < 0:  # padding of an incomplete last block: 0x80 then zeros
                    v = 0x80 if j == total else 0
                blk[i] = v
            if last:
                sub = self.k1 if total and total % 16 == 0 else self.k2
                for i in range(16):
                    blk[i] ^= sub[i]
            for i in range(16):
                blk[i] ^= x[i]
            self._aes.encrypt(blk, x)
            pos += 16
        if out is None:
            out = bytearray(16)
        out[:] = x
        return out


class Session:
    """NwkSKey and AppSKey of an activated device, with the B0 / A_i scratch blocks."""

    def __init__(self, nwkskey, appskey):
        self.nwk = Key(nwkskey)
        self.app = Key(appskey)
        self._b = bytearray(16)
        self._s = bytearray(16)
        self._tag = bytearray(16)

    def _block(self, first, direction, devaddr, fcnt, last):
        b = self._b
        b[0] = first
        b[1] = b[2] = b[3] = b[4] = 0
        b[5] = direction
        b[6:10] = devaddr  # wire order (little-endian)
        b[10] = fcnt & 0xFF
        b[11] = (fcnt >> 8) & 0xFF
        b[12] = (fcnt >> 16) & 0xFF
        b[13] = (fcnt >> 24) & 0xFF
        b[14] = 0
        b[15] = last
        return b

    def mic(self, msg, direction, devaddr, fcnt, n=-1):
        """The 4-byte MIC (as an int, little-endian wire order) over MHDR..FRMPayload = msg[:n]."""
        if n < 0:
            n = len(msg)
        b0 = self._block(0x49, direction, devaddr, fcnt, n)
        t = self.nwk.cmac(b0, msg, self._tag, n)
        return t[0] | (t[1] << 8) | (t[2] << 16) | (t[3] << 24)

    def crypt(self, buf, start, end, fport, direction, devaddr, fcnt):
        """Encrypt or decrypt buf[start:end] in place (the same operation both ways)."""
        key = self.nwk if fport == 0 else self.app
        s = self._s
        i = 1
        pos = start
        while pos < end:
            key.encrypt_block(self._block(0x01, direction, devaddr, fcnt, i), s)
            for k in range(min(16, end - pos)):
                buf[pos + k] ^= s[k]
            pos += 16
            i += 1
