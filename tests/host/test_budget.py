"""Every board profile states the memory its MicroPython image gives, and each role either fits it
with headroom or is refused for it with the budget, the need and the ways out."""

from __future__ import annotations

import pytest
from loraspot import boards, budget
from loraspot.errors import BoardProfileError

# the virtual profiles run no image of their own
REAL = {k: v for k, v in boards.all_boards().items() if not v["image"].get("placeholder")}
ROLES = (("node", None), ("hotspot", "udp"), ("hotspot", "mqtt"))


def test_every_real_profile_states_its_image_psram_and_budgets():
    assert len(REAL) == 8
    for p in REAL.values():
        assert p["image"]["name"].startswith(("ESP32_GENERIC", "ESP32_GENERIC_S3"))
        assert "romfs" not in p["flash"]["partitions"]  # stock images have no ROMFS
        mem = p["memory"]
        assert mem["heap_kb"]["wifi"] <= mem["heap_kb"]["no_wifi"]
        # a PSRAM image for PSRAM boards; the budgets of internal RAM alone stay under 200 KB
        assert (mem["psram"] > 0) == (mem["heap_kb"]["no_wifi"] > 200), p["id"]
        if mem["psram"]:  # an image that uses it: the SPIRAM variant, or the S3 build (it detects PSRAM)
            assert "SPIRAM" in p["image"]["name"] or p["image"]["name"] == "ESP32_GENERIC_S3", p["id"]


@pytest.mark.parametrize("board_id", sorted(REAL))
@pytest.mark.parametrize("role,backhaul", ROLES)
def test_each_role_fits_or_is_refused_up_front(board_id, role, backhaul):
    p = REAL[board_id]
    f = budget.fit(p, role, backhaul)
    assert f.code == "littlefs"
    assert f.budget_kb == p["memory"]["heap_kb"]["wifi" if role == "hotspot" else "no_wifi"]
    if f.fits:
        assert budget.check(p, role, backhaul) == f
        assert f.margin_kb >= budget.HEADROOM_KB
    else:
        with pytest.raises(budget.RoleDoesNotFit) as e:
            budget.check(p, role, backhaul)
        msg = str(e.value)
        assert f"does not fit board {board_id}" in msg and f"gives {f.budget_kb} KB" in msg
        assert f"needs {f.need_kb} KB" in msg and "PSRAM" in msg and "ROMFS" in msg


def test_the_outcomes_per_board_kind():
    # no PSRAM, stock image: neither role fits (the library in the heap)
    for b in ("ttgo-lora32-v1", "ttgo-lora32-v2.1", "heltec-wifi-lora32-v2", "generic-esp32-rfm95",
              "heltec-wifi-lora32-v3"):
        assert not any(budget.fit(REAL[b], r, h).fits for r, h in ROLES), b
    # PSRAM boards hold every role
    for b in ("tbeam-v1.1-sx1276", "tbeam-v1.1-sx1262", "lilygo-t3-s3"):
        assert all(budget.fit(REAL[b], r, h).fits for r, h in ROLES)
    # the virtual board's ROMFS image holds every role (the hotspot at 112 KB, with Wi-Fi)
    virtual = boards.get("virtual")
    assert all(budget.fit(virtual, r, h).fits and budget.fit(virtual, r, h).code == "romfs" for r, h in ROLES)
    assert budget.fit(virtual, "hotspot", "udp").budget_kb == 112


def _tightest(role, backhaul=None, code="littlefs"):
    """The smallest budget among the profiles that take the role with its library loaded that way."""
    return min(f.budget_kb for p in boards.all_boards().values()
               if (f := budget.fit(p, role, backhaul)).fits and f.code == code)


def test_tightest_budget_of_a_role():
    assert _tightest("node", code="romfs") == 152
    assert _tightest("hotspot", "udp", code="romfs") == 112
    assert _tightest("hotspot", "udp") > 1024  # stock images: PSRAM boards only


def test_a_profile_without_memory_is_refused_naming_the_field():
    p = dict(boards.get("ttgo-lora32-v1"))
    del p["memory"]
    with pytest.raises(BoardProfileError, match="memory"):
        boards.validate(p)
