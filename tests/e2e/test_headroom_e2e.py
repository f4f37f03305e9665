"""Headroom at the budget: a node on the virtual board at its budget answers every console request
the lock allows, every time, while its role works (retrying a join that nobody answers), and a
joined node takes config changes, info and provisioning again without a refusal or a reset."""

from __future__ import annotations

import time

import pytest
from loraspot import device
from loraspot.cli.main import main
from loraspot.sim.medium import Medium

from tests.e2e.hotspot_world import Events, node_image, wait
from tests.host.lorawan_gateway import Gateway

pytestmark = pytest.mark.e2e
SPEED = 10
RATE = 4  # requests a second
OPS = (("hello", {}), ("stats", {}), ("config.get", {"key": "uplink_interval"}), ("config.get", {"start": 0}),
       ("keys.list", {}), ("fs.ls", {"path": "/"}), ("fs.stat", {"path": "/config.json"}))


def _no_refusals(ev: Events, boots_before: int) -> None:
    stats = ev.client.request("stats")
    assert ev.client.counters["no_memory"] == 0  # the host never had to ask again
    assert stats["tx_no_memory"] == 0 and stats.get("role_no_memory", 0) == 0, stats
    assert sum(e.kind == "boot" for e in ev.events) == boots_before  # no reset


@pytest.mark.long  # a flood, a load or a whole flash: the long tier (make test stays under 10 min)
def test_a_node_retrying_its_join_answers_400_requests_at_4_a_second(make_board, tmp_path):
    with Medium(speed=SPEED) as medium:  # no hotspot in range: every join goes unanswered
        h = make_board(node_image(tmp_path / "n.bin", "70B3D57ED0000001", bytes(16), sensors="bme280"), speed=SPEED,
                       medium=medium.address, register=False, hardware={"bme280": {}})
        assert h.board.heap_kb == 152  # the node's budget on the virtual board
        ev = Events(h.info["url"])
        try:
            assert wait(lambda: any(e.kind == "join" and "attempt" in e.data for e in ev.events), 30), ev.events
            boot = ev.client.hello()["boot"]
            due = time.monotonic()
            for i in range(400):
                op, args = OPS[i % len(OPS)]
                out = ev.client.request(op, args)
                assert isinstance(out, dict)
                due += 1 / RATE
                time.sleep(max(0.0, due - time.monotonic()))
            joins = [e for e in ev.events if e.kind == "join" and not e.data.get("ok")]
            assert len(joins) >= 5, joins  # the role kept working throughout
            assert ev.client.hello()["boot"] == boot
            _no_refusals(ev, 0)
        finally:
            ev.close()


@pytest.mark.long  # a flood, a load or a whole flash: the long tier (make test stays under 10 min)
def test_a_joined_node_takes_50_config_info_and_provisioning_requests(make_board, tmp_path, capsys,
                                                                      monkeypatch):
    from loraspot.lorawan.joinserver import JoinServer

    monkeypatch.setenv("LORASPOT_MASTER_KEY", "5a" * 32)
    eui, key = "70B3D57ED0000002", bytes(range(16))
    js = JoinServer()
    js.add_device(eui, key)
    inv = tmp_path / "inv.sqlite"
    with Medium(speed=SPEED) as medium:
        gw = Gateway(medium, js, SPEED)
        try:
            h = make_board(node_image(tmp_path / "n.bin", eui, key, region="EU868", uplink_interval=10),
                           speed=SPEED, medium=medium.address, register=False, hardware={"bme280": {}})
            ev = Events(h.info["url"])
            try:
                assert wait(lambda: any(e.kind == "join" and e.data.get("ok") for e in ev.events), 60), ev.events
                boot = ev.client.hello()["boot"]
            finally:
                ev.close()  # the port is the commands' now (one connection at a time, as on a board)
            url = h.info["url"]
            for i in range(50):
                kind = i % 3
                if kind == 0:
                    code = main(["config", "set", "--port", url, "uplink_interval", str(60 + i)])
                elif kind == 1:
                    code = main(["--json", "info", "--port", url])
                else:
                    code = main(["--json", "provision", "--port", url, "--role", "node", "--force", "--no-reboot",
                                 "--inventory", str(inv)])
                out = capsys.readouterr()
                assert code == 0, (i, out.out[-500:], out.err[-500:])
                assert "(no_memory)" not in out.out + out.err
            client, hello = device.connect(url)
            with client:
                assert hello["boot"] == boot and hello["reset"] != "crash"  # one boot throughout
                stats = client.request("stats")
                assert stats["tx_no_memory"] == 0 and stats.get("role_no_memory", 0) == 0, stats
                assert client.request("config.get", {"key": "uplink_interval"})["value"] == 60 + 48
                assert client.counters["no_memory"] == 0
        finally:
            gw.close()
