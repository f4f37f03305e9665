"""The hotspot's status page and its display, on the virtual board: /status.json and / give the
board's counters and its last frames; 1,000 requests while the channel is saturated do not disturb
forwarding (every frame the hotspot heard reaches the server, none dropped, no out-of-memory);
`loraspot sim press` turns the display's page and `loraspot sim screenshot` saves what it shows.
The hotspot runs at the heap measured for it with the page and the display on (loraspot.budget)
plus the headroom."""

from __future__ import annotations

import json
import threading
import urllib.request

import pytest
from loraspot import budget
from loraspot.cli.main import main
from loraspot.listen.server import Listener
from loraspot.sim import screen
from loraspot.sim.medium import F_CRC, Cfg, Medium, MediumClient

from tests.e2e.hotspot_world import FREQ, SF, Events, hotspot_image, wait

pytestmark = pytest.mark.e2e
HEAP_KB = budget.FEATURE_NEED_KB[("hotspot-udp", "romfs", "status+display")] + budget.HEADROOM_KB


def _get(port: int, path: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.status, r.read()


def _paged(make_board, path, medium: Medium, heap_kb: int) -> tuple:
    """A hotspot with its status page started, its backhaul up and its page answering: (harness,
    page port, its events, a node on the air beside it)."""
    h = make_board(path, medium=medium.address, heap_kb=heap_kb)
    port = h.info["http"]
    ev = Events(h.info["url"])
    node = MediumClient(medium.address, "n", (10, 0, 0))
    try:
        assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60), ev.events[-5:]
        assert wait(lambda: _try(port), 30)
    except BaseException:
        node.close()
        ev.close()
        raise
    return h, port, ev, node


def test_status_page_under_a_saturated_channel(make_board, tmp_path):
    with Medium() as medium, Listener({}, port=0) as ls:
        path = hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1], http_port=80, display=True,
                             packet_events=False)
        _h, port, ev, node = _paged(make_board, path, medium, HEAP_KB)
        try:
            requests: list[int] = []
            failures: list[str] = []

            def ask() -> None:
                for i in range(1000):
                    try:
                        status, body = _get(port, "/status.json" if i % 2 else "/")
                        requests.append(status)
                        if i % 2:
                            json.loads(body)
                    except (OSError, ValueError) as e:
                        failures.append(repr(e))

            asker = threading.Thread(target=ask)
            asker.start()
            sent = 0
            while asker.is_alive():  # frame after frame on the hotspot's channel: the air is never free
                payload = bytes([0x40, sent & 0xFF, sent >> 8 & 0xFF, 0x01, 0x26, 0, sent & 0xFF, sent >> 8 & 0xFF])
                node.transmit(payload + bytes(8), Cfg(FREQ, SF, 125_000, 5, 8, F_CRC, 0x34, 14))
                node.tx_done()
                sent += 1
            asker.join()
            assert not failures and requests == [200] * 1000, failures[:3]
            assert wait(lambda: ev.client.request("stats")["forwarded"] == sent, 30)
            st = ev.client.request("stats")
            code, body = _get(port, "/status.json")
            assert code == 200
        finally:
            node.close()
            ev.close()
        assert wait(lambda: ls.snapshot()["counts"].get("rxpk", 0) >= sent, 30), ls.snapshot()["counts"]
    # every frame sent was heard, forwarded and received by the server; nothing dropped for the page
    assert sent > 50 and st["rx"] == sent and st["forwarded"] == sent and st["nomem"] == 0
    assert sum(st["dropped"].values()) == 0
    d = json.loads(body)
    assert d["packets"]["rx"] == st["rx"] and d["packets"]["forwarded"] == st["forwarded"]
    assert d["backhaul"] == "up" and d["network"] == "up" and d["dropped_total"] == 0
    last = sent - 1
    assert d["last_frames"][0]["dev_addr"] == f"2601{last >> 8 & 0xFF:02X}{last & 0xFF:02X}"
    assert d["last_frames"][0]["rssi"] == st["last_rssi"] and d["last_frames"][0]["type"] == "unconfirmed_up"
    assert d["free_heap"] > 0 and d["fw"] and d["app"] and d["uptime_s"] >= 0


def _try(port: int) -> bool:
    try:
        return _get(port, "/status.json")[0] == 200
    except OSError:
        return False


def test_changes_never_go_through_the_status_page(make_board, tmp_path):
    with Medium() as medium, Listener({}, port=0) as ls:
        path = hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1], http_port=80)
        h = make_board(path, medium=medium.address, heap_kb=HEAP_KB)
        port = h.info["http"]
        assert wait(lambda: _try(port), 60)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/setup", data=b"wifi_ssid=x", method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=30)
        assert e.value.code == 405
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=30)
        assert e.value.code == 404
        # a request larger than the board's buffer is refused, and the page still answers
        big = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"X-Pad": "x" * 2000})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(big, timeout=30)
        assert e.value.code == 413 and _try(port)


def test_display_pages_and_screenshot(make_board, tmp_path, capsys):
    with Medium() as medium, Listener({}, port=0) as ls:
        path = hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1], display=True)
        h = make_board(path, medium=medium.address, heap_kb=HEAP_KB)
        url = h.info["url"]
        ev = Events(url)
        try:
            assert wait(lambda: ev.client.request("stats").get("backhaul") == "up", 60)
            assert wait(lambda: h.board.parts.screen is not None and h.board.parts.screen != b"", 30)
            out = tmp_path / "first.png"
            assert wait(lambda: main(["sim", "screenshot", "--port", url, str(out)]) == 0, 10)
            first = h.board.parts.screen
            assert main(["sim", "press", "--port", url, "--hold", "0.3"]) == 0
            assert wait(lambda: ev.of("button") and h.board.parts.screen != first, 30), ev.events[-5:]
            second = tmp_path / "second.png"
            assert main(["sim", "screenshot", "--port", url, "--scale", "2", str(second)]) == 0
        finally:
            ev.close()
    rows, w, hgt = screen.rows_of(out)
    assert (w, hgt) == (128, 64) and rows != bytes(1024) and rows != screen.rows_of(second)[0]
    assert screen.rows_of(second)[0] == h.board.parts.screen
    assert main(["sim", "screenshot", "--port", "/dev/nothing", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "no running virtual board" in err and "Traceback" not in err


def test_config_set_refuses_what_the_boards_heap_cannot_hold(make_board, tmp_path, capsys):
    # the virtual board's budget (112 KB with Wi-Fi, library in ROMFS) holds the hotspot, not its
    # status page or display beside it: refused before anything is written, the figures named
    with Medium() as medium, Listener({}, port=0) as ls:
        h = make_board(hotspot_image(tmp_path / "hs.bin", server_port=ls.address[1]), medium=medium.address)
        url = h.info["url"]
        need = budget.FEATURE_NEED_KB[("hotspot-udp", "romfs", "display")]
        assert main(["config", "set", "--port", url, "display", "true"]) == 2
        err = capsys.readouterr().err
        assert f"needs {need} KB" in err and "112 KB" in err and len(err.strip().splitlines()) == 1
        assert main(["config", "set", "--port", url, "http_port", "80"]) == 2
        assert "status page" in capsys.readouterr().err
        assert main(["--json", "config", "get", "--port", url]) == 0
        got = json.loads(capsys.readouterr().out)
        values = got.get("values", got)
        assert values["display"] is False and values["http_port"] == 0


def test_the_status_page_and_the_display_beside_the_mqtt_backhaul(make_board, tmp_path):
    """On the MQTT backhaul, in the heap measured for it with both on (bench/panel.py) plus the
    headroom: pages answered while frames arrive, every frame published, the display drawn."""
    from tests.broker import Broker

    broker = Broker(tmp_path)
    try:
        with Medium() as medium, Listener({}, port=0, udp=False, mqtt=broker.url) as ls:
            path = hotspot_image(tmp_path / "hs.bin", backhaul="mqtt", mqtt_port=broker.port, http_port=80,
                                 display=True, packet_events=False)
            heap = budget.FEATURE_NEED_KB[("hotspot-mqtt", "romfs", "status+display")] + budget.HEADROOM_KB
            h, port, ev, node = _paged(make_board, path, medium, heap)
            try:
                codes: list[int] = []
                asker = threading.Thread(target=lambda: codes.extend(
                    _get(port, "/status.json" if i % 2 else "/")[0] for i in range(200)))
                asker.start()
                for i in range(40):
                    node.transmit(bytes([0x40, i, 0, 1, 0x26, 0, i, 0]) + bytes(8),
                                  Cfg(FREQ, SF, 125_000, 5, 8, F_CRC, 0x34, 14))
                    node.tx_done()
                asker.join()
                assert codes == [200] * 200
                assert wait(lambda: ev.client.request("stats")["forwarded"] == 40, 30), ev.client.request("stats")
                st = ev.client.request("stats")
                assert st["nomem"] == 0 and sum(st["dropped"].values()) == 0
                assert wait(lambda: h.board.parts.screens > 0, 30)
            finally:
                node.close()
                ev.close()
            assert wait(lambda: ls.snapshot()["counts"].get("rxpk", 0) >= 40, 30), ls.snapshot()["counts"]
    finally:
        broker.stop()
