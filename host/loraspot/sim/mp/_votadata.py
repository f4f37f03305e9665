# The otadata partition of an ESP32 image with two app slots (MicroPython's ESP32_GENERIC-OTA), as
# ESP-IDF reads and writes it: two copies of esp_ota_select_entry_t, one per 4 KB sector, each
#   u32 ota_seq, u8 seq_label[20], u32 ota_state, u32 crc   (crc: CRC-32 of ota_seq only)
# The slot a sequence number selects is (ota_seq - 1) % slots; the copy with the highest valid
# sequence is the active one. Sources: ESP-IDF components/bootloader_support/src/
# bootloader_common_loader.c (bootloader_common_ota_select_crc/_invalid/_valid),
# bootloader_utility.c (bootloader_utility_get_selected_boot_partition, with
# CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, which the OTA image has), components/app_update/
# esp_ota_ops.c (esp_rewrite_ota_data, esp_ota_mark_app_valid_cancel_rollback) and otatool.py
# (the CRC as binascii.crc32(seq, 0xFFFFFFFF)).
#
# Plain Python that runs on both interpreters: the virtual board's bootloader (the supervisor, in
# CPython) and its esp32.Partition (_vesp32, in MicroPython) share it.
import binascii
import struct

SECTOR = 0x1000
NEW, PENDING_VERIFY, VALID, INVALID, ABORTED, UNDEFINED = 0, 1, 2, 3, 4, 0xFFFFFFFF
STATES = {NEW: "new", PENDING_VERIFY: "pending_verify", VALID: "valid", INVALID: "invalid", ABORTED: "aborted",
          UNDEFINED: "undefined"}
_ENTRY = "<I20sII"
_SIZE = 32


def crc(seq):
    return binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF) & 0xFFFFFFFF


def entries(data):
    """[(ota_seq, ota_state, crc ok)] of the two copies in the otadata bytes."""
    out = []
    for i in range(2):
        seq, _, state, c = struct.unpack(_ENTRY, data[i * SECTOR : i * SECTOR + _SIZE])
        out.append((seq, state, c == crc(seq)))
    return out


def encode(seq, state):
    """One copy's 32 bytes (the rest of its sector stays erased)."""
    return struct.pack(_ENTRY, seq, b"\xff" * 20, state, crc(seq))


def _valid(e):
    seq, state, ok = e
    return seq != 0xFFFFFFFF and state not in (INVALID, ABORTED) and ok


def active(es):
    """Index of the active copy (the valid one with the highest sequence), or -1."""
    best = -1
    for i in range(2):
        if _valid(es[i]) and (best < 0 or es[i][0] > es[best][0]):
            best = i
    return best


def boot(data, slots):
    """What the bootloader does at a reset: (slot index to boot, [(copy index, new 32 bytes)] to
    write). An update never confirmed (pending_verify) is aborted; with no valid copy the first
    slot boots; a new one becomes pending_verify as it boots."""
    es = entries(data)
    writes = []
    for i in range(2):
        if es[i][1] == PENDING_VERIFY:
            es[i] = (es[i][0], ABORTED, es[i][2])
            writes.append((i, encode(es[i][0], ABORTED)))
    a = active(es)
    if a < 0:
        return 0, writes
    seq, state, _ = es[a]
    if state == NEW:
        writes.append((a, encode(seq, PENDING_VERIFY)))
    return (seq - 1) % slots, writes


def set_boot(data, slot, slots):
    """esp_ota_set_boot_partition: (copy index, 32 bytes) that make `slot` boot next, as new (to be
    confirmed by the app it boots)."""
    es = entries(data)
    a = active(es)
    if a < 0:
        return 0, encode(slot + 1, NEW)
    seq = es[a][0]
    i = 0
    while seq > slot + 1 + i * slots:  # the first sequence number for slot from the active one up
        i += 1
    return 1 - a, encode(slot + 1 + i * slots, NEW)


def mark_valid(data, slot, slots):
    """esp_ota_mark_app_valid_cancel_rollback: (copy index, 32 bytes) confirming the app in `slot`
    that booted on trial, or None (nothing to confirm: an app loaded by cable, or confirmed)."""
    es = entries(data)
    a = active(es)
    if a >= 0 and (es[a][0] - 1) % slots == slot and es[a][1] == PENDING_VERIFY:
        return a, encode(es[a][0], VALID)
    return None


def state_of(data, slot, slots):
    """esp_ota_get_state_partition: the state of the copy that names `slot` (UNDEFINED if none)."""
    for seq, state, ok in entries(data):
        if seq != 0xFFFFFFFF and ok and (seq - 1) % slots == slot:
            return state
    return UNDEFINED
