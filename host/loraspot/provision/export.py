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
from loraspot.listen.region import CHIRPSTACK_NAMES, TTS_SINGLE
from loraspot.provision.inventory import Device, Inventory, InventoryError

MAC_VERSION = "1.0.3"
TTS_MAC = "MAC_V1_0_3"
TTS_PHY = "PHY_V1_0_3_REV_A"
TTS_PLANS = {"EU868": "EU_863_870_TTN", "US915": "US_902_928_FSB_2"}  # others: give --frequency-plan
CS_REGIONS = CHIRPSTACK_NAMES  # ChirpStack common names (one table, with the region export)
FORMATS = ("csv", "tts-csv", "tts-json", "tts-script", "chirpstack-csv")


class ExportError(LoraspotError):
    exit_code = 8


@dataclass
class Entry:
    device: Device
    app_key: str | None  # hex, only with include_keys
    nwk_s_key: str | None = None  # an ABP device's session keys (hex), only with include_keys
    app_s_key: str | None = None
    region: str | None = None  # the region it is in (a single-channel node's: its hotspot's)

    @property
    def abp(self) -> bool:
        return bool(self.device.dev_addr) and self.device.role != "hotspot"

    @property
    def activation(self) -> str:
        return "" if self.device.role == "hotspot" else "abp" if self.abp else "otaa"


def entries(inv: Inventory, include_keys: bool, ids: Iterable[str] | None = None) -> list[Entry]:
    """Provisioned devices (all, or those of `ids`), with their AppKey when asked."""
    wanted = {i.upper() for i in ids} if ids else None
    out = []
    for d in inv.devices():
        if d.state not in ("provisioned", "locked"):
            continue
        if wanted is not None and d.dev_eui not in wanted and (d.name or "").upper() not in wanted:
            continue
        key = nwk = app = None
        if include_keys and d.role != "hotspot":
            kinds = ("nwk_s_key", "app_s_key") if d.dev_addr else ("app_key",)
            try:
                found = [inv.secret(d.dev_eui, k).hex().upper() for k in kinds]
            except InventoryError:
                found = [None] * len(kinds)
            if d.dev_addr:
                nwk, app = found
            else:
                (key,) = found
        out.append(Entry(d, key, nwk, app, _region(d, inv)))
    return out


def _region(d: Device, inv: Inventory) -> str:
    """The region a device is in: a single-channel node's is that of the hotspot on its channel."""
    if d.region != "SINGLE":
        return d.region or "EU868"
    for h in inv.devices():
        if h.role == "hotspot" and (h.freq, h.sf) == (d.freq, d.sf) and h.region:
            return h.region
    from loraspot.provision.provision import region_of
    from loraspot.resources import firmware_module

    return region_of(firmware_module("spot/lorawan/region.py"), d.freq or 0)


def device_id(d: Device) -> str:
    """A server-side ID: lower case letters, digits and hyphens."""
    base = (d.name or d.dev_eui).lower()
    out = "".join(c if c.isalnum() else "-" for c in base).strip("-")
    return out or d.dev_eui.lower()


def frequency_plan(e: Entry, override: str | None) -> str:
    if override:
        return override
    d = e.device
    if d.region == "SINGLE" and d.freq in TTS_SINGLE:  # the stock single-channel plan on its channel
        return TTS_SINGLE[d.freq]
    plan = TTS_PLANS.get(e.region or "EU868")
    if plan is None:
        raise ExportError(f"{d.dev_eui}: no default The Things Stack frequency plan for {e.region}: "
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
                  "lorawan_version", "regional_parameters", "payload_formatter", "activation", "dev_addr",
                  "identity"] + (
                      ["app_key", "nwk_s_key", "app_s_key"] if include_keys else [])
        rows = [{**e.device.public(), "lorawan_version": MAC_VERSION, "regional_parameters": "RP001-1.0.3-A",
                 "payload_formatter": "cayenne-lpp", "activation": e.activation, "dev_addr": e.device.dev_addr or "",
                 "identity": e.device.identity or "", "app_key": e.app_key or "", "nwk_s_key": e.nwk_s_key or "",
                 "app_s_key": e.app_s_key or ""}
                for e in items]
        return _csv(rows, header)
    if fmt == "tts-csv":  # The Things Stack's device CSV: semicolons, one end device per row
        if nodes and not include_keys:
            raise ExportError("The Things Stack's CSV import requires the app_key column (and ABP devices their "
                              "session keys): give --include-keys, or use --format tts-json or tts-script")
        header = ["id", "dev_eui", "join_eui", "name", "frequency_plan_id", "lorawan_version",
                  "lorawan_phy_version", "app_key", "dev_addr", "app_s_key", "f_nwk_s_int_key"]
        rows = [{"id": device_id(e.device), "dev_eui": e.device.dev_eui, "join_eui": e.device.join_eui,
                 "name": e.device.name, "frequency_plan_id": frequency_plan(e, frequency_plan_id),
                 "lorawan_version": TTS_MAC, "lorawan_phy_version": TTS_PHY, "app_key": e.app_key or "",
                 "dev_addr": e.device.dev_addr or "", "app_s_key": e.app_s_key or "",
                 "f_nwk_s_int_key": e.nwk_s_key or ""}  # LoRaWAN 1.0.x: the NwkSKey
                for e in nodes]
        return _csv(rows, header, ";")
    if fmt == "tts-json":  # a stream of EndDevice objects, as the Console and ttn-lw-cli import them
        out = []
        for e in nodes:
            d = e.device
            obj: dict = {"ids": {"device_id": device_id(d), "dev_eui": d.dev_eui, "join_eui": d.join_eui},
                         "name": d.name, "lorawan_version": TTS_MAC, "lorawan_phy_version": TTS_PHY,
                         "frequency_plan_id": frequency_plan(e, frequency_plan_id), "supports_join": not e.abp,
                         "formatters": {"up_formatter": "FORMATTER_CAYENNELPP",
                                        "down_formatter": "FORMATTER_CAYENNELPP"}}
            if e.abp:
                obj["ids"]["dev_addr"] = d.dev_addr
                session: dict = {"dev_addr": d.dev_addr}
                if e.nwk_s_key and e.app_s_key:
                    session["keys"] = {"app_s_key": {"key": e.app_s_key}, "f_nwk_s_int_key": {"key": e.nwk_s_key}}
                obj["session"] = session
            elif e.app_key:
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
                   f"--frequency-plan-id {q(frequency_plan(e, frequency_plan_id))} --lorawan-version {TTS_MAC} "
                   f"--lorawan-phy-version {TTS_PHY} --formatters.up-formatter FORMATTER_CAYENNELPP")
            if e.abp:
                cmd += f" --abp --session.dev-addr {d.dev_addr}"
                if e.nwk_s_key and e.app_s_key:
                    cmd += (f" --session.keys.app-s-key.key {e.app_s_key} --session.keys.f-nwk-s-int-key.key "
                            f"{e.nwk_s_key}")
            elif e.app_key:
                cmd += f" --root-keys.app-key.key {e.app_key}"
            lines.append(cmd)
        for e in hotspots:
            d = e.device
            lines.append(f"ttn-lw-cli gateways create {q(device_id(d))} --user-id {q(user_id)} --gateway-eui "
                         f"{d.gateway_eui} --name {q(d.name or '')} --frequency-plan-id "
                         f"{q(frequency_plan(e, frequency_plan_id))}")
        return "\n".join(lines) + "\n"
    if fmt == "chirpstack-csv":
        header = ["kind", "dev_eui", "gateway_id", "join_eui", "name", "region", "mac_version",
                  "reg_params_revision", "payload_codec", "activation", "dev_addr"] + (
                      ["nwk_key", "nwk_s_key", "app_s_key"] if include_keys else [])
        rows = [{"kind": "gateway" if e.device.role == "hotspot" else "device",
                 "dev_eui": "" if e.device.role == "hotspot" else e.device.dev_eui,
                 "gateway_id": e.device.gateway_eui or "", "join_eui": e.device.join_eui, "name": e.device.name,
                 "region": CS_REGIONS.get(e.region or "EU868", ""), "mac_version": "LORAWAN_1_0_3",
                 "reg_params_revision": "A", "payload_codec": "CAYENNE_LPP", "activation": e.activation,
                 "dev_addr": e.device.dev_addr or "", "nwk_key": e.app_key or "", "nwk_s_key": e.nwk_s_key or "",
                 "app_s_key": e.app_s_key or ""}
                for e in items]
        return _csv(rows, header)
    raise ExportError(f"unknown format {fmt!r} ({', '.join(FORMATS)})")


def written(fmt: str, items: list[Entry]) -> str:
    """What an export of `fmt` holds, in words: formats without gateways leave the hotspots out."""
    nodes = sum(e.device.role != "hotspot" for e in items)
    gateways = len(items) - nodes
    with_gateways = fmt not in ("tts-csv", "tts-json")
    text = f"{nodes} end device{'s' if nodes != 1 else ''}"
    if with_gateways:
        return text + f" and {gateways} gateway{'s' if gateways != 1 else ''}"
    if gateways:
        text += f" ({gateways} hotspot{'s' if gateways != 1 else ''} left out: {fmt} has no gateways)"
    return text


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
    if nodes and any(e.app_key is None and not (e.abp and e.nwk_s_key) for e in nodes):
        raise ExportError("a device cannot join (or an ABP device be activated) without its keys: give --include-keys")
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
            region = {e.region or "EU868" for e in nodes}
            if len(region) != 1:
                raise ExportError("devices of several regions: give --device-profile-id per region")
            activation = {e.activation for e in nodes}
            if len(activation) != 1:
                raise ExportError("OTAA and ABP devices together: give --device-profile-id per activation")
            (r,) = region
            otaa = activation == {"otaa"}
            profile = api.DeviceProfile(
                tenant_id=tenant_id, name=f"loraspot {r}{'' if otaa else ' ABP'}", region=CS_REGIONS[r],
                mac_version="LORAWAN_1_0_3", reg_params_revision="A", supports_otaa=otaa,
                payload_codec_runtime="CAYENNE_LPP", uplink_interval=300)  # enum fields by name
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
                if e.abp:  # LoRaWAN 1.0.x: the NwkSKey is all three network session keys
                    assert e.nwk_s_key is not None and e.app_s_key is not None and d.dev_addr
                    nwk = e.nwk_s_key.lower()
                    call(f"the session of {d.dev_eui}", devices.Activate, api.ActivateDeviceRequest(
                        device_activation=api.DeviceActivation(
                            dev_eui=d.dev_eui.lower(), dev_addr=d.dev_addr.lower(), app_s_key=e.app_s_key.lower(),
                            nwk_s_enc_key=nwk, s_nwk_s_int_key=nwk, f_nwk_s_int_key=nwk)))
                else:
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
