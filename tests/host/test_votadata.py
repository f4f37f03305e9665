"""The otadata partition the virtual board's bootloader and its esp32.Partition share
(loraspot/sim/mp/_votadata.py), against ESP-IDF's rules: the CRC of a sequence number (the values
ESP-IDF's own otatool.py formula gives, binascii.crc32(seq, 0xFFFFFFFF): seq 1 -> 0x4743989A,
seq 2 -> 0x55F63774, as found in otadata read from boards), the active copy, and what the
bootloader does with an update that is new, pending verification or confirmed
(components/bootloader_support/src/bootloader_utility.c, bootloader_utility_get_selected_boot_partition)."""

from __future__ import annotations

import struct

from loraspot.sim.mp import _votadata as od

ERASED = b"\xff" * (2 * od.SECTOR)


def _with(data: bytes, copy: int, entry: bytes) -> bytes:
    b = bytearray(data)
    b[copy * od.SECTOR : copy * od.SECTOR + od.SECTOR] = entry.ljust(od.SECTOR, b"\xff")
    return bytes(b)


def test_the_crc_of_a_sequence_number_is_espidfs():
    assert od.crc(1) == 0x4743989A and od.crc(2) == 0x55F63774
    entry = od.encode(1, od.VALID)
    assert len(entry) == 32 and struct.unpack_from("<I", entry, 28)[0] == 0x4743989A
    assert entry[4:24] == b"\xff" * 20 and struct.unpack_from("<I", entry, 24)[0] == od.VALID


def test_erased_otadata_boots_the_first_slot_and_writes_nothing():
    assert od.boot(ERASED, 2) == (0, [])
    assert od.state_of(ERASED, 0, 2) == od.UNDEFINED


def test_an_update_is_new_then_pending_then_aborted_unless_confirmed():
    copy, entry = od.set_boot(ERASED, 1, 2)  # ota_1: sequence 2
    assert copy == 0 and od.entries(entry.ljust(2 * od.SECTOR, b"\xff"))[0] == (2, od.NEW, True)
    data = _with(ERASED, copy, entry)
    slot, writes = od.boot(data, 2)  # first boot of the update: it runs, pending verification
    assert slot == 1 and [(c, od.entries(e.ljust(2 * od.SECTOR, b"\xff"))[0][:2]) for c, e in writes] == \
        [(0, (2, od.PENDING_VERIFY))]
    data = _with(data, *writes[0])
    slot, writes = od.boot(data, 2)  # reset without a confirmation: aborted, back to the first slot
    assert slot == 0 and len(writes) == 1
    data = _with(data, *writes[0])
    assert od.state_of(data, 1, 2) == od.ABORTED and od.boot(data, 2) == (0, [])


def test_a_confirmed_update_stays_and_the_next_one_takes_the_other_copy():
    data = _with(ERASED, *od.set_boot(ERASED, 1, 2))
    data = _with(data, *od.boot(data, 2)[1][0])
    assert od.mark_valid(data, 0, 2) is None  # not the slot on trial
    data = _with(data, *od.mark_valid(data, 1, 2))
    assert od.state_of(data, 1, 2) == od.VALID and od.boot(data, 2) == (1, [])
    assert od.mark_valid(data, 1, 2) is None  # confirmed already
    copy, entry = od.set_boot(data, 0, 2)  # back to ota_0: the next sequence for slot 0 is 3
    assert copy == 1 and struct.unpack_from("<I", entry)[0] == 3
    data = _with(data, copy, entry)
    assert od.boot(data, 2)[0] == 0
    # a copy with a wrong CRC is not valid: the other one rules
    bad = bytearray(data)
    bad[od.SECTOR + 28] ^= 1
    assert od.active(od.entries(bytes(bad))) == 0 and od.boot(bytes(bad), 2) == (1, [])
