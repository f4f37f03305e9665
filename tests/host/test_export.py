"""Exports to network servers: The Things Stack formats, plain and ChirpStack CSV, and ChirpStack's
gRPC API against a test server built from chirpstack-api's own service definitions."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid
from concurrent import futures

import grpc
import pytest
from chirpstack_api import api, common
from loraspot.cli.main import main
from loraspot.provision import export
from loraspot.provision.inventory import Inventory

NODE = "70B3D57ED0000001"
KEY = bytes.fromhex("98929b92c49edba9676d646d3b612456")


@pytest.fixture
def inv_path(inventory, monkeypatch):
    monkeypatch.setenv("LORASPOT_MASTER_KEY", "44" * 32)
    path = inventory
    with Inventory(path) as inv:
        inv.register(NODE, "A4CF12000001", role="node", board="virtual", region="EU868", name="node-000001",
                     join_eui="0000000000000000", state="provisioned")
        inv.set_secret(NODE, "app_key", KEY)
        inv.set_secret(NODE, "admin_key", bytes(range(32)))
        inv.register("A4CF12FFFE000002", "A4CF12000002", role="hotspot", board="virtual", region="EU868",
                     name="hotspot-000002", gateway_eui="A4CF12FFFE000002", state="provisioned")
        inv.register("70B3D57ED0000003", "A4CF12000003", role="node", state="provisioning")  # not done: left out
    return path


def _items(path, keys=True):
    with Inventory(path) as inv:
        return export.entries(inv, keys)


def test_tts_formats_carry_what_a_join_needs(inv_path):
    items = _items(inv_path)
    rows = list(csv.DictReader(io.StringIO(export.render("tts-csv", items, include_keys=True)), delimiter=";"))
    assert rows == [{"id": "node-000001", "dev_eui": NODE, "join_eui": "0000000000000000", "name": "node-000001",
                     "frequency_plan_id": "EU_863_870_TTN", "lorawan_version": "MAC_V1_0_3",
                     "lorawan_phy_version": "PHY_V1_0_3_REV_A", "app_key": KEY.hex().upper(), "dev_addr": "",
                     "app_s_key": "", "f_nwk_s_int_key": ""}]
    dev = json.loads(export.render("tts-json", items))  # one node: one object in the stream
    assert dev["ids"] == {"device_id": "node-000001", "dev_eui": NODE, "join_eui": "0000000000000000"}
    assert dev["root_keys"]["app_key"]["key"] == KEY.hex().upper() and dev["supports_join"] is True
    assert dev["formatters"]["up_formatter"] == "FORMATTER_CAYENNELPP" and dev["lorawan_version"] == "MAC_V1_0_3"
    script = export.render("tts-script", items, application_id="farm")
    assert f"--dev-eui {NODE}" in script and "--application-id farm" in script
    assert "--lorawan-phy-version PHY_V1_0_3_REV_A" in script
    assert f"--root-keys.app-key.key {KEY.hex().upper()}" in script
    assert "ttn-lw-cli gateways create hotspot-000002 --user-id admin --gateway-eui A4CF12FFFE000002" in script
    # without --include-keys no key appears anywhere; The Things Stack's CSV import needs the
    # app_key column (a required column of its CSV File Reference), so that export says so instead
    for fmt in export.FORMATS:
        if fmt == "tts-csv":
            with pytest.raises(export.ExportError, match=r"requires the app_key column.*--include-keys"):
                export.render(fmt, _items(inv_path, keys=False))
            continue
        text = export.render(fmt, _items(inv_path, keys=False))
        assert KEY.hex().upper() not in text.upper() and "70B3D57ED0000003" not in text


def test_plain_and_chirpstack_csv(inv_path):
    rows = list(csv.DictReader(io.StringIO(export.render("csv", _items(inv_path), include_keys=True))))
    assert [(r["dev_eui"], r["role"], r["lorawan_version"], r["app_key"]) for r in rows] == [
        ("70B3D57ED0000001", "node", "1.0.3", KEY.hex().upper()), ("A4CF12FFFE000002", "hotspot", "1.0.3", "")]
    rows = list(csv.DictReader(io.StringIO(export.render("chirpstack-csv", _items(inv_path), include_keys=True))))
    assert rows[0]["nwk_key"] == KEY.hex().upper() and rows[0]["mac_version"] == "LORAWAN_1_0_3"
    assert rows[1]["kind"] == "gateway" and rows[1]["gateway_id"] == "A4CF12FFFE000002"


def test_other_regions_need_a_frequency_plan(inv_path):
    with Inventory(inv_path) as inv:
        inv.update(NODE, region="AS923-2")
    with pytest.raises(export.ExportError, match="give --frequency-plan"):
        export.render("tts-csv", _items(inv_path), include_keys=True)
    assert "AS_923_925" in export.render("tts-csv", _items(inv_path), include_keys=True,
                                         frequency_plan_id="AS_923_925")


class ChirpStack:
    """DeviceService (Create, CreateKeys), GatewayService (Create) and DeviceProfileService
    (Create) that record what they get, check the token, and refuse duplicates as ChirpStack does."""

    def __init__(self, token: str):
        self.token = token
        self.requests: list[tuple[str, object, dict]] = []
        self.devices: dict[str, object] = {}
        self.lock = threading.Lock()

    def _check(self, name, request, context):
        meta = dict(context.invocation_metadata())
        with self.lock:
            self.requests.append((name, request, meta))
        if meta.get("authorization") != f"Bearer {self.token}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token")

    def services(self, server):
        outer = self

        class Devices(api.DeviceServiceServicer):
            def Create(self, request, context):
                outer._check("Device.Create", request, context)
                if request.device.dev_eui in outer.devices:
                    context.abort(grpc.StatusCode.ALREADY_EXISTS, "object already exists")
                outer.devices[request.device.dev_eui] = request.device
                return _empty()

            def CreateKeys(self, request, context):
                outer._check("Device.CreateKeys", request, context)
                return _empty()

            def Activate(self, request, context):
                outer._check("Device.Activate", request, context)
                return _empty()

        class Gateways(api.GatewayServiceServicer):
            def Create(self, request, context):
                outer._check("Gateway.Create", request, context)
                return _empty()

        class Profiles(api.DeviceProfileServiceServicer):
            def Create(self, request, context):
                outer._check("DeviceProfile.Create", request, context)
                return api.CreateDeviceProfileResponse(id=str(uuid.uuid4()))

        api.add_DeviceServiceServicer_to_server(Devices(), server)
        api.add_GatewayServiceServicer_to_server(Gateways(), server)
        api.add_DeviceProfileServiceServicer_to_server(Profiles(), server)


def _empty():
    from google.protobuf import empty_pb2

    return empty_pb2.Empty()


@pytest.fixture
def chirpstack():
    cs = ChirpStack("secret-token")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    cs.services(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield cs, f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


def test_chirpstack_grpc_push(inv_path, chirpstack, capsys):
    cs, target = chirpstack
    res = export.push_chirpstack(target, "secret-token", _items(inv_path), application_id="app-1",
                                 tenant_id="tenant-1")
    assert res.failed == {} and res.created == [NODE, "A4CF12FFFE000002"]
    names = [r[0] for r in cs.requests]
    assert names == ["DeviceProfile.Create", "Device.Create", "Device.CreateKeys", "Gateway.Create"]
    assert all(r[2]["authorization"] == "Bearer secret-token" for r in cs.requests)
    profile = cs.requests[0][1].device_profile
    assert profile.mac_version == common.MacVersion.Value("LORAWAN_1_0_3")
    assert profile.reg_params_revision == common.RegParamsRevision.Value("A") and profile.supports_otaa
    assert profile.payload_codec_runtime == api.CodecRuntime.Value("CAYENNE_LPP")
    assert profile.region == common.Region.Value("EU868") and profile.tenant_id == "tenant-1"
    dev = cs.requests[1][1].device
    assert (dev.dev_eui, dev.application_id, dev.device_profile_id) == (NODE.lower(), "app-1", res.device_profile_id)
    keys = cs.requests[2][1].device_keys
    assert keys.nwk_key == KEY.hex() and keys.app_key == ""  # LoRaWAN 1.0.x: the AppKey goes in nwk_key
    gw = cs.requests[3][1].gateway
    assert gw.gateway_id == "a4cf12fffe000002" and gw.tenant_id == "tenant-1"

    # again: the server refuses the existing device, and the CLI says so with a non-zero exit
    code = main(["devices", "--inventory", str(inv_path), "push-chirpstack", "--server", target, "--token",
                 "secret-token", "--application-id", "app-1", "--device-profile-id", "p-1", "--tenant-id", "t"])
    assert code == 8
    err = capsys.readouterr().err
    assert "ALREADY_EXISTS" in err and "object already exists" in err


def test_chirpstack_wrong_token_is_reported(inv_path, chirpstack):
    _, target = chirpstack
    res = export.push_chirpstack(target, "wrong", _items(inv_path), application_id="app-1",
                                 device_profile_id="p-1", tenant_id="t")
    assert set(res.failed) == {NODE, "A4CF12FFFE000002"}
    assert all("UNAUTHENTICATED" in v for v in res.failed.values())
    with pytest.raises(export.ExportError, match="--include-keys"):
        export.push_chirpstack(target, "t", _items(inv_path, keys=False), application_id="a", device_profile_id="p",
                               tenant_id="t")


def test_unreachable_server_is_a_clear_error(inv_path):
    res = export.push_chirpstack("127.0.0.1:9", "t", _items(inv_path), application_id="a", device_profile_id="p",
                                 tenant_id="t", timeout=2)
    assert "UNAVAILABLE" in res.failed[NODE]


ABP = "70B3D57ED0000004"
NWK, APP = bytes(range(16)), bytes(range(16, 32))


def _abp_inventory(path):
    """Only an ABP node and the hotspot: its DevAddr and session keys, as `provision --activation abp` keeps them."""
    with Inventory(path) as inv:
        inv.update(NODE, state="registered")  # the OTAA node left out
        inv.register(ABP, "A4CF12000004", role="node", board="virtual", region="EU868", name="abp-1",
                     join_eui="0000000000000000", state="provisioned", dev_addr="260B1234")
        inv.set_secret(ABP, "nwk_s_key", NWK)
        inv.set_secret(ABP, "app_s_key", APP)


def test_abp_devices_carry_their_session(inv_path, chirpstack):
    _abp_inventory(inv_path)
    items = _items(inv_path)
    rows = list(csv.DictReader(io.StringIO(export.render("tts-csv", items, include_keys=True)), delimiter=";"))
    assert [(r["dev_eui"], r["dev_addr"], r["app_s_key"], r["f_nwk_s_int_key"], r["app_key"]) for r in rows] == [
        (ABP, "260B1234", APP.hex().upper(), NWK.hex().upper(), "")]
    cs, target = chirpstack
    res = export.push_chirpstack(target, "secret-token", items, application_id="app-1", tenant_id="tenant-1")
    assert res.failed == {} and ABP in res.created
    names = [r[0] for r in cs.requests]
    assert names == ["DeviceProfile.Create", "Device.Create", "Device.Activate", "Gateway.Create"]
    assert cs.requests[0][1].device_profile.supports_otaa is False
    act = cs.requests[2][1].device_activation
    assert (act.dev_eui, act.dev_addr, act.app_s_key) == (ABP.lower(), "260b1234", APP.hex())
    assert act.nwk_s_enc_key == act.s_nwk_s_int_key == act.f_nwk_s_int_key == NWK.hex()  # 1.0.x: one NwkSKey
    with pytest.raises(export.ExportError, match="--include-keys"):
        export.push_chirpstack(target, "t", _items(inv_path, keys=False), application_id="a", tenant_id="t")


def test_export_says_what_it_wrote(inv_path, tmp_path, capsys):
    out = tmp_path / "tts.csv"
    assert main(["devices", "--inventory", str(inv_path), "export", "--format", "tts-csv", "--include-keys", "--out",
                 str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "1 end device (1 hotspot left out: tts-csv has no gateways) written" in err
    assert len(list(csv.DictReader(io.StringIO(out.read_text()), delimiter=";"))) == 1
    assert main(["devices", "--inventory", str(inv_path), "export", "--format", "tts-script", "--out",
                 str(tmp_path / "s.sh")]) == 0
    assert "1 end device and 1 gateway written" in " ".join(capsys.readouterr().err.split())
    assert main(["devices", "--inventory", str(inv_path), "export", "--format", "tts-csv"]) != 0
    assert "requires the app_key column" in " ".join(capsys.readouterr().err.split())
