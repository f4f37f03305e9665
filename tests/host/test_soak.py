"""The soak's account of a run, on made-up observations: each way an uplink can go missing is
named, or fails the run; restarts, FCnt gaps, silent consoles and heap outside its band fail it
(tests/e2e/test_soak_e2e.py runs the real world for a device-hour)."""

from __future__ import annotations

from collections import Counter

from loraspot.sim.soak import HEAP_BAND, WARMUP_MINUTES, Soak, SoakOptions, _Board

MIN = 60_000_000
EUI = "70B3D57ED0000001"
ADDR = "26011bda"


def _soak(sent_fcnts, received=(), air=None, refused=None) -> Soak:
    s = Soak(SoakOptions(device_hours=1))
    s.sent = {"node0": [(f, (f + 1) * MIN) for f in sent_fcnts]}
    s.devaddr = {"node0": {ADDR}}
    s.received = {(EUI, f) for f in received}
    s.air = air or {}
    s.refused = refused or {}
    s._hs_ids = {"hs0", "hs1"}
    return s


def _boards(heap=None, unanswered=0):
    node = _Board("node0", "node", heap=heap or [(m, 30000) for m in range(1, 60)], asked=59, answered=59 - unanswered)
    node.no_answer = [f"minute {m}: timed out" for m in range(unanswered)]
    return [node, _Board("hotspot0", "hotspot", heap=[(m, 6000) for m in range(1, 60)], asked=59, answered=59)]


def _report(s: Soak, boards=None, drops=None, health=None) -> dict:
    return s._report(boards or _boards(), 0, 60 * MIN, Counter(drops or {}), health or {"resets": 0, "events_lost": 0},
                     {"node0": EUI}, 1.0)


def test_every_uplink_received_is_a_clean_run():
    rep = _report(_soak(range(5), received=range(5)))
    assert rep["ok"], rep["failures"]
    assert rep["fates"] == {"received": 5} and rep["unaccounted"] == 0


def test_losses_on_the_air_and_counted_drops_are_accounted_with_their_reason():
    air = {(ADDR, 1): [set(), {"hs0": "collision with frame 12", "hs1": "below sensitivity"}],
           (ADDR, 2): [set(), {}],
           (ADDR, 3): [{"hs1"}, {}]}
    rep = _report(_soak(range(5), received=(0, 4), air=air), drops={"full": 1})
    assert rep["ok"], rep["failures"]
    assert rep["fates"] == {"received": 2, "lost on the air: below sensitivity": 1,
                            "lost on the air: no hotspot listening (transmitting a downlink)": 1,
                            "dropped by a hotspot (counted)": 1}


def test_an_uplink_heard_by_a_hotspot_that_no_counter_explains_fails():
    air = {(ADDR, 1): [{"hs0"}, {}]}
    rep = _report(_soak(range(3), received=(0, 2), air=air), drops={"full": 0})
    assert not rep["ok"] and rep["unaccounted"] == 1
    assert "beyond what the hotspots counted" in " ".join(rep["failures"])


def test_an_uplink_never_on_the_air_fails():
    rep = _report(_soak(range(3), received=(0, 2)))
    assert not rep["ok"] and "node0 FCnt 1: never on the air" in " ".join(rep["failures"])


def test_a_refused_uplink_is_named_and_a_late_one_is_in_flight():
    s = _soak(range(3), received=(0,), refused={(EUI, 1): "MIC mismatch"})
    s.sent["node0"].append((3, 60 * MIN - 10 * 1_000_000))  # sent 10 device-seconds before the end
    rep = _report(s)
    assert rep["fates"]["refused by the server: MIC mismatch"] == 1
    assert rep["in_flight_at_end"] == 1
    assert not rep["ok"]  # FCnt 2 was sent, never on the air


def test_fcnt_gaps_restarts_lost_events_and_silent_consoles_fail():
    rep = _report(_soak((0, 1, 3), received=(0, 1, 3)), health={"resets": 1, "events_lost": 2},
                  boards=_boards(unanswered=1))
    text = " ".join(rep["failures"])
    assert "FCnt 1 then 3" in text and "1 board restarts" in text and "2 console events lost" in text
    assert "1 console requests unanswered" in text


def test_free_heap_leaving_its_band_after_warm_up_fails_and_inside_it_passes():
    falling = [(m, 30000 - (HEAP_BAND + 1) * (m > 40)) for m in range(1, 60)]
    rep = _report(_soak((0,), received=(0,)), boards=_boards(heap=falling))
    assert not rep["ok"] and "free heap left its band" in " ".join(rep["failures"])
    warmup_dip = [(m, 10000 if m <= WARMUP_MINUTES else 30000 - (m % 3) * 1000) for m in range(1, 60)]
    rep = _report(_soak((0,), received=(0,)), boards=_boards(heap=warmup_dip))
    assert rep["ok"], rep["failures"]
    assert rep["heap"]["node0"] == {"at_warmup_end": 28000, "min": 28000, "max": 30000}  # minute 11: 28000


def test_a_devaddr_from_a_stats_answer_accounts_for_a_node_whose_join_event_was_missed():
    class Client:
        def request(self, op, timeout=None):
            assert op == "stats"
            return {"heap_free": 30000, "up_ms": 1000, "joined": True, "devaddr": ADDR.upper()}

    s = _soak(range(3), received=(0, 2), air={(ADDR, 1): [set(), {"hs0": "below sensitivity"}]})
    s.devaddr = {}  # its join event came before the console client was attached
    assert not _report(s)["ok"]  # without the DevAddr the lost uplink is not accounted
    s._ask(_Board("node0", "node"), Client(), 1)
    rep = _report(s)
    assert rep["ok"], rep["failures"]
    assert rep["fates"] == {"received": 2, "lost on the air: below sensitivity": 1}


def test_a_late_copy_the_server_refused_is_accounted_by_the_count_on_the_air():
    s = _soak(range(3), received=(0, 2))
    s._frame({"type": "uplink", "dev_eui": EUI.lower(), "devaddr": ADDR.upper(), "fcnt16": 1,
              "error": "FCnt 1 not above the last (2): a late or replayed frame"})
    s._frame({"type": "uplink", "error": "unknown DevAddr", "devaddr": "01020304", "fcnt16": 9})  # not ours
    rep = _report(s)
    assert rep["ok"], rep["failures"]
    assert rep["fates"] == {"received": 2,
                            "refused by the server: FCnt N not above the last (N): a late or replayed frame": 1}
