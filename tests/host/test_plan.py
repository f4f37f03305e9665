"""Which plan `provision` gives a node: one the inventory's single-channel hotspots hear, or a
refusal that says why (docs/single-channel.md); a hotspot's channel within its region."""

from __future__ import annotations

import time

import pytest
from loraspot.provision import provision
from loraspot.provision.inventory import Inventory
from loraspot.provision.provision import Options, ProvisionError, plan


def _hotspot(inv: Inventory, n: int, freq: int, sf: int, state: str = "provisioned") -> None:
    inv.register(f"00000000000000{n:02X}", f"0000000000{n:02X}", role="hotspot", region="EU868", freq=freq, sf=sf,
                 state=state, provisioned_at=time.time())


def test_a_node_gets_the_hotspots_channel_or_a_reason(inventory):
    with Inventory(inventory) as inv:
        node = Options(role="node")
        assert plan(node, inv).startswith("EU868") and node.region == "EU868"  # no hotspot: a full region
        _hotspot(inv, 1, 868_100_000, 7, state="provisioning")  # not done: not counted
        assert plan(Options(role="node"), inv).startswith("EU868")
        _hotspot(inv, 2, 868_300_000, 9)
        node = Options(role="node")
        assert plan(node, inv) == "SINGLE on 868.3 MHz SF9 (the channel of the inventory's hotspot)"
        assert (node.region, node.freq, node.sf) == ("SINGLE", 868_300_000, 9)
        with pytest.raises(ProvisionError, match=r"single-channel \(868.3 MHz SF9\).*--multi-channel"):
            plan(Options(role="node", region="EU868"), inv)  # the README's old path: refused, with the reason
        assert plan(Options(role="node", region="EU868", multi_channel=True), inv) == "EU868"
        with pytest.raises(ProvisionError, match=r"no hotspot of the inventory listens on 868\.5 MHz"):
            plan(Options(role="node", freq=868_500_000), inv)
        _hotspot(inv, 3, 868_500_000, 7)
        with pytest.raises(ProvisionError, match=r"2 channels .*give --freq and --sf"):
            plan(Options(role="node"), inv)
        node = Options(role="node", freq=868_500_000)
        assert plan(node, inv).startswith("SINGLE on 868.5 MHz SF7") and node.sf == 7


def test_a_hotspots_channel_is_in_its_region(inventory):
    with Inventory(inventory) as inv:
        hs = Options(role="hotspot")
        assert plan(hs, inv) == "EU868, listening on 868.1 MHz SF7"
        us = Options(role="hotspot", region="US915")
        plan(us, inv)
        assert us.freq == 903_900_000  # the first channel of sub-band 2 (what TTN and ChirpStack use), not EU868
        with pytest.raises(ProvisionError, match="outside US915"):
            plan(Options(role="hotspot", region="US915", freq=868_100_000), inv)
        with pytest.raises(ProvisionError, match="region it stands in"):
            plan(Options(role="hotspot", region="SINGLE"), inv)


def test_single_without_a_channel_is_refused(inventory):
    with Inventory(inventory) as inv, pytest.raises(ProvisionError, match="provision the hotspot"):
        plan(Options(role="node", region="SINGLE"), inv)
    assert provision.REGIONS[-1] == "SINGLE"


def test_a_single_channel_node_gets_the_region_its_channel_lies_in(inventory):
    """single_region: the hotspot's region on that channel; with no hotspot in the inventory, the
    region whose band holds the frequency (where US915 and AS923 overlap, the one it is a default
    channel of); a frequency in no region, or in two without being a default channel, is refused."""
    with Inventory(inventory) as inv:
        for freq, want in ((903_900_000, "US915"), (923_200_000, "AS923-1"), (916_600_000, "AS923-3"),
                           (868_100_000, "EU868")):
            node = Options(role="node", freq=freq, sf=7)
            assert plan(node, inv).startswith("SINGLE") and node.single_region == want, freq
        with pytest.raises(ProvisionError, match="lies in US915 and AS923"):
            plan(Options(role="node", freq=925_000_000, sf=7), inv)
        inv.register("0000000000000009", "000000000009", role="hotspot", region="AS923-2", freq=921_400_000, sf=9,
                     state="provisioned", provisioned_at=time.time())
        node = Options(role="node")
        plan(node, inv)
        assert (node.freq, node.single_region) == (921_400_000, "AS923-2")


def test_a_hotspot_channel_its_nodes_could_not_use_and_lbt_outside_as923_are_refused(inventory):
    with Inventory(inventory) as inv:
        # 869.3 MHz lies between EU868's sub-bands (LoRaMac-node RegionEU868.c VerifyRfFreq)
        with pytest.raises(ProvisionError, match="in no sub-band of EU868"):
            plan(Options(role="hotspot", region="EU868", freq=869_300_000, sf=9), inv)
        # AS923 with the 400 ms uplink dwell time: SF12 (DR0) carries no payload
        with pytest.raises(ProvisionError, match="no payload at SF12: use SF10 or faster"):
            plan(Options(role="hotspot", region="AS923-1", freq=923_200_000, sf=12), inv)
        assert plan(Options(role="hotspot", region="AS923-1", freq=923_200_000, sf=10), inv).startswith("AS923-1")
        # listen before talk is defined for AS923 (ARIB STD-T108) and nowhere else the tool offers
        with pytest.raises(ProvisionError, match="--lbt: listen before talk is defined for AS923 only"):
            plan(Options(role="node", region="EU868", lbt=True), inv)
        with pytest.raises(ProvisionError, match="defined for AS923 only"):
            plan(Options(role="node", freq=868_100_000, sf=9, lbt=True), inv)
        node = Options(role="node", region="AS923-1", lbt=True)
        assert plan(node, inv) == "AS923-1"
        node = Options(role="node", freq=923_200_000, sf=10, lbt=True)
        assert plan(node, inv).startswith("SINGLE on 923.2 MHz SF10") and node.single_region == "AS923-1"
