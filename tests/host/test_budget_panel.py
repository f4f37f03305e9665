"""The status page and the display are refused up front on a board whose heap cannot hold them beside
its role (loraspot.budget.FEATURE_NEED_KB, measured by bench/panel.py), with the figures in the
message; a board without a display cannot switch one on; what was not measured is refused."""

from __future__ import annotations

import pytest
from loraspot import boards, budget


@pytest.mark.parametrize("board_id", sorted(b for b in boards.all_boards()))
@pytest.mark.parametrize("status,display", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("backhaul", ["udp", "mqtt"])
def test_each_board_fits_or_is_refused(board_id, status, display, backhaul):
    profile = boards.get(board_id)
    code = "romfs" if profile["flash"]["partitions"].get("romfs") else "littlefs"
    case = budget.feature_case(status, display)
    if display and not profile.get("oled"):
        with pytest.raises(budget.FeatureDoesNotFit, match="has no display"):
            budget.check_features(profile, "hotspot", backhaul, status, display)
        return
    need = budget.FEATURE_NEED_KB[(f"hotspot-{backhaul}", code, case)]
    assert need > budget.NEED_KB[(f"hotspot-{backhaul}", code)]  # more than the hotspot alone
    if profile["memory"]["heap_kb"]["wifi"] - need >= budget.HEADROOM_KB:
        assert budget.check_features(profile, "hotspot", backhaul, status, display) == need
    else:
        with pytest.raises(budget.FeatureDoesNotFit) as e:
            budget.check_features(profile, "hotspot", backhaul, status, display)
        assert f"{need} KB" in str(e.value) and f"{profile['memory']['heap_kb']['wifi']} KB" in str(e.value)


def test_psram_boards_take_both_and_a_stock_esp32_does_not():
    assert budget.check_features(boards.get("lilygo-t3-s3"), "hotspot", "udp", True, True)
    with pytest.raises(budget.FeatureDoesNotFit, match=r"do not fit board ttgo-lora32-v2\.1"):
        budget.check_features(boards.get("ttgo-lora32-v2.1"), "hotspot", "udp", True, True)


def test_what_was_not_measured_is_refused():
    t3 = boards.get("lilygo-t3-s3")
    with pytest.raises(budget.FeatureDoesNotFit, match="not measured"):
        budget.check_features(t3, "hotspot", "mqtt", True, True, True)  # receipts beside both
    assert budget.check_features(t3, "node", None, True, False) is None  # a node has no status page


def test_a_nodes_display_fits_the_psram_boards_and_not_a_stock_esp32():
    # the node's display costs it what bench/panel.py measured beside the node (node and
    # node+display with the same check), added to the node's own figure
    for code in ("romfs", "littlefs"):
        need = budget.FEATURE_NEED_KB[("node", code, "display")]
        assert need - budget.NEED_KB[("node", code)] >= 16
    assert budget.check_features(boards.get("lilygo-t3-s3"), "node", None, False, True) == \
        budget.FEATURE_NEED_KB[("node", "littlefs", "display")]
    for board_id, code in (("virtual", "romfs"), ("ttgo-lora32-v1", "littlefs"), ("heltec-wifi-lora32-v3", "littlefs")):
        need = budget.FEATURE_NEED_KB[("node", code, "display")]
        fails = rf"the display does not fit board {board_id} .*needs {need} KB"
        with pytest.raises(budget.FeatureDoesNotFit, match=fails):
            budget.check_features(boards.get(board_id), "node", None, False, True)


def test_the_setup_access_point_fits_wherever_a_hotspot_does():
    # it runs instead of the role: a board that can run a hotspot can open it (bench/panel.py)
    for code in ("romfs", "littlefs"):
        assert budget.FEATURE_NEED_KB[("setup", code, "setup")] <= budget.NEED_KB[("hotspot-udp", code)]


@pytest.mark.parametrize("board_id", sorted(b for b in boards.all_boards()))
@pytest.mark.parametrize("backhaul,status", [("udp", False), ("udp", True), ("mqtt", False)])
def test_signed_receipts_fit_the_psram_boards_only(board_id, backhaul, status):
    profile = boards.get(board_id)
    budget_kb = profile["memory"]["heap_kb"]["wifi"]
    if profile["flash"]["partitions"].get("romfs"):  # measured with the library on littlefs only
        with pytest.raises(budget.FeatureDoesNotFit, match="not measured"):
            budget.check_features(profile, "hotspot", backhaul, status, False, True)
        return
    need = budget.FEATURE_NEED_KB[(f"hotspot-{backhaul}", "littlefs", budget.feature_case(status, False, True))]
    assert need > budget.FEATURE_NEED_KB[("hotspot-udp", "littlefs", "status")] if status else \
        need > budget.NEED_KB[(f"hotspot-{backhaul}", "littlefs")]
    if profile["memory"]["psram"]:
        assert budget.check_features(profile, "hotspot", backhaul, status, False, True) == need
    else:  # what a stock ESP32 gives with Wi-Fi on is short of it
        assert budget_kb - need < budget.HEADROOM_KB
        with pytest.raises(budget.FeatureDoesNotFit) as e:
            budget.check_features(profile, "hotspot", backhaul, status, False, True)
        assert "signed receipts do not fit" in str(e.value) and f"{need} KB" in str(e.value)


def test_receipts_that_were_not_measured_or_have_no_meaning_are_refused():
    t3 = boards.get("lilygo-t3-s3")
    with pytest.raises(budget.FeatureDoesNotFit, match="not measured"):
        budget.check_features(t3, "hotspot", "mqtt", True, False, True)  # beside the status page on MQTT
    with pytest.raises(budget.FeatureDoesNotFit, match="not measured"):
        budget.check_features(t3, "hotspot", "udp", False, True, True)  # beside the display
    with pytest.raises(budget.FeatureDoesNotFit, match="a node has none"):
        budget.check_features(t3, "node", None, False, False, True)
