"""Exports of the inventory to network servers: The Things Stack (CSV and JSON device import,
a ttn-lw-cli script), ChirpStack v4 (a CSV, and devices, OTAA keys and gateways through its gRPC
API) and a plain CSV. Nodes go out as end devices, hotspots as gateways. Keys only when asked.

Every device is LoRaWAN 1.0.3 (regional parameters 1.0.3 revision A) with a Cayenne LPP payload
formatter. For 1.0.x, ChirpStack keeps the AppKey in DeviceKeys.nwk_key (app_key is 1.1's).
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from loraspot.errors import LoraspotError
from loraspot.provision.inventory import Device, Inventory, InventoryError

MAC_VERSION = "1.0.3"
TTS_MAC = "MAC_V1_0_3"
TTS_PHY = "PHY_V1_0_3_REV_A"
TTS_PLANS = {"EU868": "EU_863_870_TTN", "US915": "US_902_928_FSB_2"}  # others: give --frequency-plan
CS_REGIONS = {"EU868": "EU868", "US915": "US915", "AS923-1": "AS923", "AS923-2": "AS923_2",
              "AS923-3": "AS923_3", "AS923-4": "AS923_4", "CN470": "CN470"}
FORMATS = ("csv", "tts-csv", "tts-json", "tts-script", "chirpstack-csv")


class ExportError(LoraspotError):
    exit_code = 8


@dataclass
class Entry:
    device: Device
    app_key: str | None  # hex, only with include_keys


def entries(inv: Inventory, include_keys: bool, ids: Iterable[str] | None = None) -> list[Entry]:
    """Provisioned devices (all, or those of `ids`), with their AppKey when asked."""
    wanted = {i.upper() for i in ids} if ids else None
    out = []
    for d in inv.devices():
        if d.state not in ("provisioned", "locked"):
            continue
        if wanted is not None and d.dev_eui not in wanted and (d.name or "").upper() not in wanted:
            continue
        key = None
        if include_keys and d.role != "hotspot":
            try:
                key = inv.secret(d.dev_eui, "app_key").hex().upper()
            except InventoryError:
                key = None
        out.append(Entry(d, key))
    return out


def device_id(d: Device) -> str:
    """A server-side ID: lower case letters, digits and hyphens."""
    base = (d.name or d.dev_eui).lower()
    out = "".join(c if c.isalnum() else "-" for c in base).strip("-")
    return out or d.dev_eui.lower()


def frequency_plan(d: Device, override: str | None) -> str:
    if override:
        return override
    plan = TTS_PLANS.get(d.region or "EU868")
    if plan is None:
        raise ExportError(f"{d.dev_eui}: no default The Things Stack frequency plan for {d.region}: "
                          "give --frequency-plan")
    return plan


def _csv(rows: list[dict], header: list[str], delimiter: str = ",") -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, delimiter=delimiter, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def render(fmt: str, items: list[Entry], *, include_keys: bool = False, application_id: str = "loraspot",
           frequency_plan_id: str | None = None, user_id: str = "admin") -> str:
    """The export as text in one of FORMATS."""
    nodes = [e for e in items if e.device.role != "hotspot"]
    hotspots = [e for e in items if e.device.role == "hotspot"]
    if fmt == "csv":
        header = ["dev_eui", "join_eui", "gateway_eui", "name", "role", "board", "mac", "region", "fw", "state",
                  "lorawan_version", "regional_parameters", "payload_formatter"] + (["app_key"] if include_keys else [])
        rows = [{**e.device.public(), "lorawan_version": MAC_VERSION, "regional_parameters": "RP001-1.0.3-A",
                 "payload_formatter": "cayenne-lpp", "app_key": e.app_key or ""} for e in items]
        return _csv(rows, header)
    if fmt == "tts-csv":  # The Things Stack's device CSV: semicolons, one end device per row
        header = ["id", "dev_eui", "join_eui", "name", "frequency_plan_id", "lorawan_version",
                  "lorawan_phy_version"] + (["app_key"] if include_keys else [])
        rows = [{"id": device_id(e.device), "dev_eui": e.device.dev_eui, "join_eui": e.device.join_eui,
                 "name": e.device.name, "frequency_plan_id": frequency_plan(e.device, frequency_plan_id),
                 "lorawan_version": TTS_MAC, "lorawan_phy_version": TTS_PHY, "app_key": e.app_key or ""}
                for e in nodes]
        return _csv(rows, header, ";")
    if fmt == "tts-json":  # a stream of EndDevice objects, as the Console and ttn-lw-cli import them
        out = []
        for e in nodes:
            d = e.device
            obj: dict = {"ids": {"device_id": device_id(d), "dev_eui": d.dev_eui, "join_eui": d.join_eui},
                         "name": d.name, "lorawan_version": TTS_MAC, "lorawan_phy_version": TTS_PHY,
                         "frequency_plan_id": frequency_plan(d, frequency_plan_id), "supports_join": True,
                         "formatters": {"up_formatter": "FORMATTER_CAYENNELPP",
                                        "down_formatter": "FORMATTER_CAYENNELPP"}}
            if e.app_key:
                obj["root_keys"] = {"app_key": {"key": e.app_key}}
            out.append(json.dumps(obj, indent=2))
        return "\n".join(out) + ("\n" if out else "")
    if fmt == "tts-script":
        q = shlex.quote
        lines = ["#!/bin/sh", "# Registers the devices with The Things Stack (ttn-lw-cli logged in)", "set -e"]
        for e in nodes:
            d = e.device
            cmd = (f"ttn-lw-cli end-devices create --application-id {q(application_id)} --device-id "
                   f"{q(device_id(d))} --dev-eui {d.dev_eui} --join-eui {d.join_eui} --name {q(d.name or '')} "
                   f"--frequency-plan-id {q(frequency_plan(d, frequency_plan_id))} --lorawan-version {TTS_MAC} "
                   f"--lorawan-phy-version {TTS_PHY} --formatters.up-formatter FORMATTER_CAYENNELPP")
            if e.app_key:
                cmd += f" --root-keys.app-key.key {e.app_key}"
            lines.append(cmd)
        for e in hotspots:
            d = e.device
            lines.append(f"ttn-lw-cli gateways create {q(device_id(d))} --user-id {q(user_id)} --gateway-eui "
                         f"{d.gateway_eui} --name {q(d.name or '')} --frequency-plan-id "
                         f"{q(frequency_plan(d, frequency_plan_id))}")
        return "\n".join(lines) + "\n"
    if fmt == "chirpstack-csv":
        header = ["kind", "dev_eui", "gateway_id", "join_eui", "name", "region", "mac_version",
                  "reg_params_revision", "payload_codec"] + (["nwk_key"] if include_keys else [])
        rows = [{"kind": "gateway" if e.device.role == "hotspot" else "device",
                 "dev_eui": "" if e.device.role == "hotspot" else e.device.dev_eui,
                 "gateway_id": e.device.gateway_eui or "", "join_eui": e.device.join_eui, "name": e.device.name,
                 "region": CS_REGIONS.get(e.device.region or "EU868", ""), "mac_version": "LORAWAN_1_0_3",
                 "reg_params_revision": "A", "payload_codec": "CAYENNE_LPP", "nwk_key": e.app_key or ""}
                for e in items]
        return _csv(rows, header)
    raise ExportError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")


# --- ChirpStack v4 over gRPC ----------------------------------------------------------------------
@dataclass
class PushResult:
    created: list[str]
    failed: dict[str, str]
    device_profile_id: str | None


def push_chirpstack(target: str, token: str, items: list[Entry], *, application_id: str | None,
                    device_profile_id: str | None = None, tenant_id: str | None = None,
                    insecure: bool = True, timeout: float = 10.0) -> PushResult:
    """Create the devices (and their OTAA key) and the gateways in ChirpStack. Without a device
    profile one is created in `tenant_id` (LoRaWAN 1.0.3, RP 1.0.3 rev A, OTAA, Cayenne LPP)."""
    from loraspot.extras import need

    need("grpc", "chirpstack", "push-chirpstack (ChirpStack's gRPC API)")
    need("chirpstack_api.api", "chirpstack", "push-chirpstack (ChirpStack's gRPC API)")
    import grpc
    from chirpstack_api import api

    nodes = [e for e in items if e.device.role != "hotspot"]
    hotspots = [e for e in items if e.device.role == "hotspot"]
    if nodes and not application_id:
        raise ExportError("ChirpStack needs --application-id for the devices")
    if hotspots and not tenant_id:
        raise ExportError("ChirpStack needs --tenant-id for the gateways")
    if nodes and any(e.app_key is None for e in nodes):
        raise ExportError("a device cannot join without its key: give --include-keys")
    meta = [("authorization", f"Bearer {token}")]
    channel = grpc.insecure_channel(target) if insecure else grpc.secure_channel(target, grpc.ssl_channel_credentials())
    created: list[str] = []
    failed: dict[str, str] = {}

    def call(what: str, fn, req):
        try:
            return fn(req, metadata=meta, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code().name if hasattr(e, "code") else "ERROR"  # pyright: ignore[reportAttributeAccessIssue]
            detail = e.details() if hasattr(e, "details") else str(e)  # pyright: ignore[reportAttributeAccessIssue]
            raise ExportError(f"ChirpStack refused {what}: {code}: {detail}") from None

    try:
        if nodes and not device_profile_id:
            if not tenant_id:
                raise ExportError("give --device-profile-id, or --tenant-id to create a device profile")
            region = {e.device.region or "EU868" for e in nodes}
            if len(region) != 1:
                raise ExportError("devices of several regions: give --device-profile-id per region")
            (r,) = region
            profile = api.DeviceProfile(
                tenant_id=tenant_id, name=f"loraspot {r}", region=CS_REGIONS[r], mac_version="LORAWAN_1_0_3",
                reg_params_revision="A", supports_otaa=True, payload_codec_runtime="CAYENNE_LPP",
                uplink_interval=300)  # enum fields by name, as protobuf takes them
            resp = call("the device profile", api.DeviceProfileServiceStub(channel).Create,
                        api.CreateDeviceProfileRequest(device_profile=profile))
            device_profile_id = resp.id
        devices = api.DeviceServiceStub(channel)
        for e in nodes:
            d = e.device
            try:
                call(f"device {d.dev_eui}", devices.Create, api.CreateDeviceRequest(device=api.Device(
                    dev_eui=d.dev_eui.lower(), join_eui=(d.join_eui or "").lower(), name=d.name or d.dev_eui,
                    application_id=application_id, device_profile_id=device_profile_id,
                    description=f"loraspot {d.board or ''} {d.mac or ''}".strip())))
                assert e.app_key is not None
                call(f"the keys of {d.dev_eui}", devices.CreateKeys, api.CreateDeviceKeysRequest(
                    device_keys=api.DeviceKeys(dev_eui=d.dev_eui.lower(), nwk_key=e.app_key.lower())))
                created.append(d.dev_eui)
            except ExportError as err:
                failed[d.dev_eui] = str(err)
        gateways = api.GatewayServiceStub(channel)
        for e in hotspots:
            d = e.device
            try:
                call(f"gateway {d.gateway_eui}", gateways.Create, api.CreateGatewayRequest(gateway=api.Gateway(
                    gateway_id=(d.gateway_eui or "").lower(), name=device_id(d), tenant_id=tenant_id,
                    description=f"loraspot hotspot {d.board or ''}".strip(), stats_interval=30)))
                created.append(d.gateway_eui or "")
            except ExportError as err:
                failed[d.gateway_eui or d.dev_eui] = str(err)
    finally:
        channel.close()
    return PushResult(created, failed, device_profile_id)
