"""The long tier's reboot flood: a board restarted 100 times in a row by its console comes back
every time, with a new boot id, its config as it was, no crash recorded and the console answering
at once; a second flood of requests sent while it restarts is answered or refused, never hangs it."""

from __future__ import annotations

import pytest
from loraspot import device
from loraspot.errors import DeviceReset, DeviceTimeout

pytestmark = [pytest.mark.e2e, pytest.mark.long]

REBOOTS = 100


@pytest.mark.timeout(1800)
def test_a_hundred_reboots_in_a_row(board):
    client, hello = board.connect(timeout=10)
    try:
        device.config_set(client, {"name": "flooded", "stats_interval": 321})
        boots = {hello["boot"]}
        for n in range(REBOOTS):
            h = device.reboot(client, wait=60)
            assert h["boot"] not in boots, f"reboot {n}: boot id {h['boot']} seen before"
            boots.add(h["boot"])
            assert h.get("crash") in (None, "", {}), f"reboot {n}: a crash was recorded: {h.get('crash')}"
            if n % 10 == 0:
                values = device.config_get(client)
                assert (values["name"], values["stats_interval"]) == ("flooded", 321), f"reboot {n}"
        # requests sent back to back with a reboot among them: each is answered, or refused as
        # lost to the restart (DeviceReset), and the board answers afterwards. A reboot request
        # refused as lost may still have reached the next boot and restart it once more, so the
        # board may restart under the last hello as many times as reboots were asked, never more.
        reboots = 0
        for n in range(20):
            reboots += n % 5 == 0
            try:
                client.request("reboot" if n % 5 == 0 else "stats", timeout=30)
            except (DeviceReset, DeviceTimeout):
                pass
        for _ in range(reboots + 1):
            try:
                assert client.request("hello", timeout=60)["name"] == "flooded"
                break
            except DeviceReset:
                continue
        else:
            pytest.fail(f"the board restarted more than the {reboots} times it was asked to")
        assert len(boots) == REBOOTS + 1
    finally:
        client.close()
