"""`loraspot provision`, `lock`, `unlock`, `factory-reset` and `devices`:
thin commands over loraspot.provision."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import click

from loraspot.cli import options, ui
from loraspot.lorawan.crypto import key_check_value
from loraspot.provision import export, provision
from loraspot.provision.inventory import Inventory

AES_KINDS = provision.AES_KINDS

INVENTORY_OPTION = options.inventory("The inventory (default: inventory.sqlite in the user data folder).")


def _ports(ports: tuple[str, ...], every: bool) -> list[str]:
    from loraspot.flash.flasher import resolve_targets

    return [t.port for t in resolve_targets(list(ports), every, None)]


@click.command("provision")
@options.ports()
@click.option("--all", "every", is_flag=True, help="Provision every detected board.")
@click.option("--role", type=click.Choice(["node", "hotspot"]), required=True)
@click.option("--region", type=click.Choice(provision.REGIONS), default=None,
              help="Hotspot: the region it stands in (default EU868). Node: default SINGLE on the channel of the "
                   "inventory's hotspot, EU868 when it has none.")
@click.option("--freq", type=click.IntRange(137_000_000, 1_020_000_000), default=None, metavar="HZ",
              help="The one channel: a hotspot's (default: its region's first), a SINGLE node's.")
@click.option("--sf", type=click.IntRange(7, 12), default=None, help="The channel's spreading factor (default 7).")
@click.option("--multi-channel", is_flag=True,
              help="A node on a full region although the inventory's hotspots are single-channel.")
@click.option("--activation", type=click.Choice(["otaa", "abp"]), default="otaa", show_default=True,
              help="Nodes: otaa (an AppKey, the node joins) or abp (a DevAddr and session keys, kept in the "
                   "inventory like the AppKey).")
@click.option("--lbt", is_flag=True, help="Nodes: listen before talk (AS923 only; required in Japan).")
@click.option("--repeater", is_flag=True,
              help="Nodes: the network uses repeater-compatible payload sizes (ChirpStack's repeater_compatible).")
@click.option("--join-eui", default=None, help="JoinEUI (default: $LORASPOT_JOIN_EUI or 0000000000000000).")
@click.option("--name", default=None, help="Device name (default: role and the end of its EUI).")
@click.option("--vendor-euis", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="CSV of vendor-assigned DevEUIs (columns dev_eui and optionally mac) instead of the MAC's EUI-64.")
@click.option("--wifi-ssid", default=None, help="Wi-Fi network (hotspots).")
@click.option("--wifi-password", default=None, help="Wi-Fi password (default: $LORASPOT_WIFI_PASSWORD).")
@click.option("--server", default=None,
              help="Hotspot backhaul: udp://host[:port] (Semtech UDP) or mqtt://[user[:password]@]host[:port][/prefix].")
@click.option("--force", is_flag=True,
              help="Provision a board that already is, with new keys (admin key needed if locked).")
@click.option("--no-reboot", is_flag=True, help="Leave the board running its old role until it restarts.")
@INVENTORY_OPTION
@click.pass_obj
def provision_cmd(ctx, ports, every, role, region, freq, sf, multi_channel, activation, lbt, repeater, join_eui, name,
                  vendor_euis, wifi_ssid, wifi_password, server, force, no_reboot, inventory) -> None:
    """Give boards their identity and fresh keys (kept in the inventory), in parallel."""
    opts = provision.Options(
        role=role, region=region, freq=freq, sf=sf, multi_channel=multi_channel, activation=activation, lbt=lbt,
        repeater=repeater,
        join_eui=join_eui or os.environ.get("LORASPOT_JOIN_EUI") or "0" * 16, name=name,
        wifi_ssid=wifi_ssid, wifi_password=wifi_password or os.environ.get("LORASPOT_WIFI_PASSWORD"),
        server=server, force=force, reboot=not no_reboot,
        vendor=provision.VendorEuis.load(vendor_euis) if vendor_euis else None)
    opts.check()
    targets = _ports(ports, every)
    if name and len(targets) > 1:
        raise provision.ProvisionError("--name names one board; leave it out for several")
    with Inventory(inventory) as inv:
        chosen = provision.plan(opts, inv)
    if not ctx.json:
        ctx.err.print(f"plan: {chosen}", highlight=False)
    results = provision.provision_many(targets, opts, inventory)
    if ctx.json:
        ctx.emit([r.as_dict() for r in results])
    else:
        table = ui.table("port", "board", "MAC", "EUI", "role", "AppKey KCV", "result", "seconds")
        for r in results:
            table.add_row(r.port, r.board or "-", r.mac or "-", r.dev_eui or "-", r.role or "-", r.kcv or "-",
                          "[green]ok[/]" if r.ok else f"[red]failed[/]: {r.error}", f"{r.seconds:.1f}")
        ui.print_table(ctx.out, table)
    failed = [r for r in results if not r.ok]
    if failed:
        raise provision.ProvisionError(f"{len(failed)} of {len(results)} boards failed; fix the cause and run again")


@click.command("lock")
@options.port()
@click.option("--production", is_flag=True, help="Also turn the MicroPython REPL off (Ctrl-C does nothing).")
@INVENTORY_OPTION
@click.pass_obj
def lock_cmd(ctx, port: str, production: bool, inventory: Path | str | None) -> None:
    """Require the admin key (from the inventory) for keys, sensitive config, file writes and reset."""
    out = provision.set_lock(port, True, production, inventory)
    if ctx.json:
        ctx.emit(out)
        return
    ctx.out.print(f"{port}: locked" + (" (production: REPL off)" if production else ""))
    for warning in out.get("warnings", []):
        ctx.err.print(f"[yellow]warning:[/] {warning}", highlight=False)


@click.command("unlock")
@options.port()
@INVENTORY_OPTION
@click.pass_obj
def unlock_cmd(ctx, port: str, inventory: Path | str | None) -> None:
    """Turn admin authentication off again (needs the admin key from the inventory)."""
    out = provision.set_lock(port, False, False, inventory)
    ctx.emit(out) if ctx.json else ctx.out.print(f"{port}: unlocked")


@click.command("factory-reset")
@options.port()
@click.option("--yes", is_flag=True, help="Do not ask.")
@INVENTORY_OPTION
@click.pass_obj
def factory_reset_cmd(ctx, port: str, yes: bool, inventory: Path | str | None) -> None:
    """Erase the board's secrets and config (signed with the admin key when it is locked)."""
    if not yes:
        click.confirm(f"Erase the keys and config of the board on {port}?", abort=True)
    provision.factory_reset(port, inventory)
    ctx.emit({"reset": True}) if ctx.json else ctx.out.print(f"{port}: keys and config erased")


# --- devices ---------------------------------------------------------------------------------------
@click.group("devices", invoke_without_command=True)
@options.inventory("The inventory (default: inventory.sqlite in the user data folder).", "path")
@click.pass_context
def devices_group(cctx: click.Context, path: Path | str | None) -> None:
    """The device inventory (secrets encrypted at rest; shown only with `show --reveal-keys`)."""
    cctx.obj.inventory_path = path
    if cctx.invoked_subcommand is None:
        cctx.invoke(list_cmd)


def _when(t: float | None) -> str:
    return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else "-"


@devices_group.command("list")
@click.pass_obj
def list_cmd(ctx) -> None:
    """Devices with the kinds of secrets stored (key check values, never keys)."""
    with Inventory(ctx.inventory_path, existing=True) as inv:
        rows = []
        for d in inv.devices():
            kinds = inv.secret_kinds(d.dev_eui)
            checks = {k: (key_check_value(inv.secret(d.dev_eui, k)) if k in AES_KINDS else "set") for k in kinds}
            rows.append({**d.public(), "secrets": checks})
    if ctx.json:
        ctx.emit(rows)
        return
    table = ui.table("DevEUI", "name", "role", "board", "MAC", "state", "fw", "provisioned", "secrets (KCV)")
    for r in rows:
        table.add_row(r["dev_eui"], r["name"] or "", r["role"] or "", r["board"] or "", r["mac"] or "", r["state"],
                      r["fw"] or "", _when(r["provisioned_at"]), " ".join(f"{k}:{v}" for k, v in r["secrets"].items()))
    ui.print_table(ctx.out, table) if rows else ctx.out.print("the inventory is empty")


@devices_group.command("show")
@click.argument("ident")
@click.option("--reveal-keys", is_flag=True, help="Print the keys themselves (the only command that does).")
@click.pass_obj
def show_cmd(ctx, ident: str, reveal_keys: bool) -> None:
    """One device, by DevEUI, MAC or name."""
    with Inventory(ctx.inventory_path, existing=True) as inv:
        d = _find(inv, ident)
        out = d.public()
        kinds = inv.secret_kinds(d.dev_eui)
        out["secrets"] = {k: (inv.secret(d.dev_eui, k).hex().upper() if reveal_keys else
                              key_check_value(inv.secret(d.dev_eui, k)) if k in AES_KINDS else "set")
                          for k in kinds}
    if ctx.json:
        ctx.emit(out)
        return
    pairs: list[tuple[str, object]] = []
    for k, v in out.items():
        if k == "secrets":
            pairs += [(kind + ("" if reveal_keys else " (KCV)" if kind in AES_KINDS else ""), val)
                      for kind, val in v.items()]
        else:
            pairs.append((k, _when(v) if k.endswith("_at") else v))
    ui.record(pairs)  # plain lines: a revealed key is never folded or cut, whatever the width


@devices_group.command("set-ota")
@click.argument("ident")
@click.argument("target", required=False)
@click.option("--clear", is_flag=True, help="Forget the address.")
@click.pass_obj
def set_ota_cmd(ctx, ident: str, target: str | None, clear: bool) -> None:
    """Where a hotspot's update service answers (HOST[:PORT], default port 3232), for
    `loraspot deploy --all-ota`. IDENT: DevEUI, MAC or name."""
    from loraspot.flash import ota
    from loraspot.provision.inventory import InventoryError

    if clear == bool(target):
        raise click.UsageError("give HOST[:PORT], or --clear")
    address = None
    if target:
        host, port = ota.parse_target(target)  # normalised once, before anything is written
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with Inventory(ctx.inventory_path, existing=True) as inv:
        d = _find(inv, ident)
        if address and d.role != "hotspot":
            raise InventoryError(f"{d.dev_eui} is a {d.role or 'device with no role'}: only a hotspot takes "
                                 "updates over the network")
        inv.update(d.dev_eui, ota=address)
    if ctx.json:
        ctx.emit({"dev_eui": d.dev_eui, "ota": address})
    else:
        ctx.out.print(f"{d.dev_eui}: updates over the air at {address}" if address
                      else f"{d.dev_eui}: no update address", highlight=False)


def _find(inv: Inventory, ident: str):
    from loraspot.provision.inventory import InventoryError

    for d in inv.devices():
        if ident.upper().replace(":", "") in (d.dev_eui, d.mac, (d.name or "").upper(), d.gateway_eui):
            return d
    raise InventoryError(f"no device {ident!r} in the inventory (DevEUI, MAC or name)")


@devices_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def backup_cmd(ctx, file: Path) -> None:
    """A consistent copy of the inventory into a new file, safe while others write: SQLite's online
    backup, or a logical export of a PostgreSQL inventory (an inventory file, secrets still sealed;
    `devices migrate` takes it back to a server)."""
    with Inventory(ctx.inventory_path, existing=True) as inv:
        inv.backup(file)
        n = len(inv.devices())
    ctx.emit({"file": str(file), "devices": n}) if ctx.json else ctx.out.print(f"{n} devices backed up to {file}")


@devices_group.command("migrate")
@click.option("--from", "source", type=options.StoreTarget(), required=True, metavar="PATH|URL",
              help="The inventory to copy: a file or postgresql://USER@HOST/DB.")
@click.option("--to", "dest", type=options.StoreTarget(), required=True, metavar="PATH|URL",
              help="An empty inventory to copy it into (made if need be).")
@click.pass_obj
def migrate_cmd(ctx, source: Path | str, dest: Path | str) -> None:
    """Move an inventory to another database (a file to a PostgreSQL server several stations share,
    or back): every device, self-test and secret, still sealed under the same master key. The
    source is left as it was."""
    from loraspot.provision.inventory import key_file, migrate
    from loraspot.store import where

    counts = migrate(source, dest)
    if ctx.json:
        ctx.emit({"from": where(source), "to": where(dest), **counts})
        return
    ctx.out.print(f"{counts['devices']} devices, {counts['secrets']} secrets and {counts['selftests']} self-tests "
                  f"copied to {where(dest)}", highlight=False)
    if not os.environ.get("LORASPOT_MASTER_KEY"):
        ctx.err.print(f"its master key is the source's, in {key_file(dest)}: other stations need it too (that file, "
                      "or LORASPOT_MASTER_KEY)", highlight=False)


@devices_group.command("export")
@click.option("--format", "fmt", type=click.Choice(export.FORMATS), default="csv", show_default=True)
@click.option("--include-keys", is_flag=True, help="Put the AppKeys in the export (servers need them to join).")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write here (default: standard output).")
@click.option("--application-id", default="loraspot", show_default=True, help="The Things Stack application.")
@click.option("--user-id", default="admin", show_default=True, help="The Things Stack gateway owner.")
@click.option("--frequency-plan", default=None, help="The Things Stack frequency plan (default: from the region).")
@click.argument("ids", nargs=-1)
@click.pass_obj
def export_cmd(ctx, fmt, include_keys, out_file, application_id, user_id, frequency_plan, ids) -> None:
    """Provisioned devices for a network server: nodes as end devices, hotspots as gateways."""
    with Inventory(ctx.inventory_path, existing=True) as inv:
        items = export.entries(inv, include_keys, ids)
    text = export.render(fmt, items, include_keys=include_keys, application_id=application_id,
                         frequency_plan_id=frequency_plan, user_id=user_id)
    if out_file is None:
        click.echo(text, nl=False)
    else:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if include_keys else 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        note = " (with keys: keep it safe)" if include_keys else ""
        ctx.err.print(f"{export.written(fmt, items)} written to {out_file}{note}")


@devices_group.command("push-chirpstack")
@click.option("--server", "target", required=True, help="ChirpStack gRPC API as host:port.")
@click.option("--token", default=None, help="API token (default: $CHIRPSTACK_API_TOKEN).")
@click.option("--application-id", default=None, help="Application for the devices.")
@click.option("--device-profile-id", default=None, help="Device profile (default: one created in --tenant-id).")
@click.option("--tenant-id", default=None, help="Tenant for gateways and a created device profile.")
@click.option("--tls", is_flag=True, help="Use TLS to reach the API.")
@click.argument("ids", nargs=-1)
@click.pass_obj
def push_chirpstack_cmd(ctx, target, token, application_id, device_profile_id, tenant_id, tls, ids) -> None:
    """Create the devices (with their OTAA key, LoRaWAN 1.0.3: in nwk_key) and gateways in ChirpStack v4."""
    token = token or os.environ.get("CHIRPSTACK_API_TOKEN")
    if not token:
        raise export.ExportError("give --token or set CHIRPSTACK_API_TOKEN")
    with Inventory(ctx.inventory_path, existing=True) as inv:
        items = export.entries(inv, True, ids)
    res = export.push_chirpstack(target, token, items, application_id=application_id,
                                 device_profile_id=device_profile_id, tenant_id=tenant_id, insecure=not tls)
    if ctx.json:
        ctx.emit({"created": res.created, "failed": res.failed, "device_profile_id": res.device_profile_id})
    else:
        for what in res.created:
            ctx.out.print(f"created {what}")
        for what, why in res.failed.items():
            ctx.err.print(f"[red]failed[/] {what}: {why}")
    if res.failed:
        raise export.ExportError(f"{len(res.failed)} of {len(items)} failed")


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(f"{text!r}: give a date and time as 2026-12-05 or 2026-12-05T14:30",
                                 param_hint="--since") from None


@click.command("labels")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The sheet: a .pdf (all pages) or a .png (one file per page).")
@options.inventory("The inventory (default: inventory.sqlite in the user data folder).", "path")
@click.option("--dev-eui", "dev_euis", multiple=True, help="Only these boards (repeatable).")
@click.option("--since", default=None,
              help="Only boards provisioned since then (a provisioning run), e.g. 2026-12-05T14:00.")
@click.option("--profile-id", default="00000000", show_default=True,
              help="TR005 profile ID in the QR code: your LoRa Alliance VendorID and ModelID (8 hex digits).")
@click.option("--with-app-key", is_flag=True, help="Put each node's AppKey in its QR code (a label is not a safe place "
              "for it: only when the boxes stay with you).")
@click.pass_obj
def labels_cmd(ctx, out: Path, path: Path | str | None, dev_euis: tuple[str, ...], since: str | None, profile_id: str,
               with_app_key: bool) -> None:
    """Printable labels for a batch: name, DevEUI or gateway EUI, the LoRa Alliance TR005 QR code
    (JoinEUI, DevEUI, profile) and the pairing code of each provisioned board."""
    from loraspot import labels
    from loraspot.provision.inventory import hex_id

    after = _since(since)
    profile_id = hex_id(profile_id, 8, "profile ID (VendorID + ModelID)", labels.LabelError)
    wanted = {hex_id(e, 16, "DevEUI", labels.LabelError) for e in dev_euis}
    with Inventory(path, existing=True) as inv:
        devices = [d for d in inv.devices() if (d.dev_eui in wanted if wanted else d.state in ("provisioned", "locked"))
                   and (after is None or (d.provisioned_at or 0) >= after)]
        missing = wanted - {d.dev_eui for d in devices}
        if missing:
            raise labels.LabelError(f"not in the inventory: {', '.join(sorted(missing))}")
        if not devices:
            raise labels.LabelError("no provisioned boards to label (provision some, or give --dev-eui)")
        with inv.transaction():
            data = [labels.label_data(inv, d, profile_id, with_app_key) for d in devices]
    files = labels.render(data, out)
    if ctx.json:
        # the QR text carries the AppKey when asked: it stays on the sheet only
        ctx.emit({"files": [str(f) for f in files],
                  "labels": [{"dev_eui": d["dev_eui"], **({} if with_app_key else {"qr": d["qr"]})} for d in data]})
    else:
        ctx.out.print(f"{len(data)} label(s) on {len(files)} page(s): " + ", ".join(str(f) for f in files),
                      highlight=False)


def register(cli: click.Group) -> None:
    for cmd in (provision_cmd, lock_cmd, unlock_cmd, factory_reset_cmd, devices_group, labels_cmd):
        cli.add_command(cmd)

