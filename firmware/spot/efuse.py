# The chip's security eFuses as the running firmware reads them, for hello (loaded for the call):
# BLOCK0 read registers, bit places from espefuse's efuse_defs/esp32.yaml and esp32s3.yaml.


def _odd(bits):
    ones = 0
    while bits:
        ones += bits & 1
        bits >>= 1
    return ones % 2 == 1


def read(mem32, chip):
    """Packed in one small int (a board keeps it from boot): bit 0 flash encryption on (an odd
    number of FLASH_CRYPT_CNT / SPI_BOOT_CRYPT_CNT bits), bit 1 secure boot, bits 2-3 the ROM's
    UART download mode: 0 enabled, 1 secure, 2 disabled."""
    if chip == "esp32s3":
        cnt, boot, dl = (mem32[0x60007034] >> 18) & 7, (mem32[0x60007038] >> 20) & 1, mem32[0x6000703C]
        download = 2 if dl & 1 else (1 if dl & 0x20 else 0)
    else:
        w0 = mem32[0x3FF5A000]
        cnt, boot = (w0 >> 20) & 0x7F, (mem32[0x3FF5A018] >> 4) & 3  # ABS_DONE_0 (v1) or ABS_DONE_1 (v2)
        download = 2 if w0 & (1 << 27) else 0
    return _odd(cnt) | (2 if boot else 0) | download << 2

