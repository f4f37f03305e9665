# Strict base64 for what comes from outside (console transfers, network servers' downlinks);
# a module of its own so that code which never decodes base64 does not carry it.
from binascii import a2b_base64


def b64decode(text):
    """Padded base64 to bytes, or None. MicroPython's a2b_base64 skips characters outside the
    alphabet instead of failing ("YWJj!" decodes), so the length decoded must be the text's."""
    n = len(text)
    try:
        data = a2b_base64(text)
    except ValueError:
        return None
    if n % 4 or len(data) != n // 4 * 3 - text[-2:].count("="):
        return None
    return data
