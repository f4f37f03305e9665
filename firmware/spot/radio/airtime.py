# LoRa time on air, exact to the microsecond. One module for the radio drivers, the duty-cycle
# logic and the RF medium of the simulator (the host loads this very file).
#
# Symbol counts follow the Semtech datasheets: SX1276/77/78/79 section 4.1.1.7 (also AN1200.13)
# and SX1261/2 section 6.1.4, which differs for SF5 and SF6 (6.25 preamble-to-header symbols and
# no header-length term of 8 bits). Plain Python only: no `micropython` import, so CPython can
# load it too. Results stay below 2^30 for every LoRaWAN setting (small ints on an ESP32).

SX127X = 0
SX126X = 1


def ldro_needed(sf, bw):
    """LowDataRateOptimize is mandated when the symbol time is 16 ms or more."""
    return (1 << sf) * 1000 >= 16 * bw


def symbol_us(sf, bw):
    """Length of one symbol in whole microseconds (exact for 7.8 .. 500 kHz powers of two)."""
    return (1000000 << sf) // bw


def symbols_x4(payload_len, sf, bw, cr=5, preamble=8, explicit=True, crc=True, ldro=None, chip=SX127X):
    """Four times the number of symbols of a packet (symbol counts end in .25).

    cr is the coding-rate denominator 5..8 (4/5 .. 4/8); ldro None means "as the datasheet
    requires for this SF and bandwidth"."""
    if not 5 <= sf <= 12:
        raise ValueError("spreading factor must be 5..12")
    if not 5 <= cr <= 8:
        raise ValueError("coding rate must be 5..8 (4/5 .. 4/8)")
    if not 0 <= payload_len <= 255:
        raise ValueError("payload length must be 0..255")
    if ldro is None:
        ldro = ldro_needed(sf, bw)
    bits = 8 * payload_len + (16 if crc else 0) - 4 * sf
    if chip == SX126X and sf < 7:
        # SX126x SF5/SF6: 6.25 symbols of sync, no 8-bit header term, no LDRO
        bits += 20 if explicit else 0
        head_x4 = 4 * preamble + 25
        per = 4 * sf
    else:
        bits += 8 + (20 if explicit else 0)
        head_x4 = 4 * preamble + 17
        per = 4 * (sf - (2 if ldro else 0))
    blocks = (bits + per - 1) // per if bits > 0 else 0
    return head_x4 + 4 * (8 + blocks * (cr))


def symbols_to_us(n_x4, sf, bw):
    """Microseconds (floor) that n_x4/4 symbols take."""
    if 1000000 % bw == 0:
        return ((n_x4 << sf) * (1000000 // bw)) >> 2
    return (n_x4 * (1000000 << sf)) // (4 * bw)


def time_on_air_us(payload_len, sf, bw, cr=5, preamble=8, explicit=True, crc=True, ldro=None, chip=SX127X):
    n = symbols_x4(payload_len, sf, bw, cr, preamble, explicit, crc, ldro, chip)
    return symbols_to_us(n, sf, bw)
