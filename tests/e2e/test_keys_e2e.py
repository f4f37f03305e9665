"""Keys on a virtual board: stored, answered with a check value the host computes too, kept
across a reboot, never seen on the serial line."""

from __future__ import annotations

import pytest
from loraspot import device
from loraspot.errors import DeviceError
from loraspot.lorawan.crypto import key_check_value

pytestmark = pytest.mark.e2e
APPKEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")


def test_keys_set_answers_kcv_and_never_the_key(board):
    client, _ = board.connect()
    with client:
        out = client.request("keys.set", {"kind": "app_key", "value": APPKEY.hex()})
        assert out == {"kind": "app_key", "stored": True, "kcv": key_check_value(APPKEY)}
        with pytest.raises(DeviceError) as e:
            client.request("keys.set", {"kind": "app_key", "value": "00" * 8})
        assert e.value.code == "bad_args"
        device.reboot(client)
        assert client.request("keys.list") == {"keys": {"app_key": key_check_value(APPKEY)}}
        with pytest.raises(DeviceError):
            client.request("fs.get", {"path": "/secrets.json", "offset": 0})
        seen = "\n".join(client.logs) + repr(client.orphan_errors)
    for needle in (APPKEY.hex(), APPKEY.hex().upper()):
        assert needle not in seen
