from __future__ import annotations

import json
from pathlib import Path

import click

from loraspot import device
from loraspot.cli import options, ui
from loraspot.errors import LoraspotError

port_option = options.port("url")
BAUD = click.IntRange(300, 5_000_000)  # what USB serial chips and pyserial take
UDP_PORT = click.IntRange(0, 65535)
INVENTORY = options.inventory("Inventory with the board's admin key, for a locked board (default: the user's).")
baud_option = click.option("--baud", type=BAUD, default=115200, show_default=True, help="Console baud rate.")


@click.command("info")
@port_option
@baud_option
@click.pass_obj
def info_cmd(ctx, url: str, baud: int) -> None:
    """Show what a board says about itself (hello)."""
    client, hello = device.connect(url, baud)
    try:
        stats = client.request("stats")
    finally:
        client.close()
    if ctx.json:
        ctx.emit({"hello": hello, "stats": stats})
        return
    rows: list[tuple[str, object]] = [("id", str(hello.get("id", "")).upper())]  # a MAC: upper-case hex
    rows += [(key, hello.get(key)) for key in ("board", "chip", "role", "name", "fw", "proto", "reset", "boot")]
    crash = hello.get("crash")
    rows.append(("last crash", crash["error"] if crash else "none"))
    if hello.get("radio") is not None:  # "ok", "starting" or "fault: <why>" (absent for an idle board)
        rows.append(("radio", f"{hello['radio']} ({stats.get('radio_faults', 0)} faults since boot)"))
    rows += app_rows(hello.get("app"))
    rows.append(("uptime", f"{stats['up_ms'] / 1000:.1f} s"))
    rows.append(("heap free", f"{stats['heap_free']} bytes"))
    rows.append(("locked", "production (REPL off)" if hello.get("production") else "yes" if hello.get("locked")
                 else "no"))
    sec = hello.get("security") or {}
    for key, label in (("flash_encryption", "flash encryption"), ("secure_boot", "secure boot")):
        rows.append((label, "unknown" if key not in sec else "on" if sec[key] else "off"))
    rows.append(("UART download", sec.get("download", "unknown")))
    ui.record(rows)
    for warning in device.security_warnings(hello):
        ctx.err.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _parse_value(text: str) -> object:
    """Values are JSON (numbers, true/false, "quoted"); anything else is taken as text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


@click.group("config")
def config_group() -> None:
    """Read or change a board's configuration."""


@config_group.command("get")
@port_option
@baud_option
@click.argument("key", required=False)
@click.pass_obj
def config_get_cmd(ctx, url: str, baud: int, key: str | None) -> None:
    client, _ = device.connect(url, baud)
    try:
        values = device.config_get(client, key)
    finally:
        client.close()
    if ctx.json:
        ctx.emit(values)
    elif key is not None:
        click.echo(json.dumps(values[key]))
    else:
        for k in sorted(values):
            click.echo(f"{k} = {json.dumps(values[k])}")


def app_rows(app: object) -> list[tuple[str, object]]:
    """The app's version and, after an update over the air, its phase, the version before it and
    the last rollback with its reason (hello's `app`, docs/ota.md)."""
    if not isinstance(app, dict) or not app.get("version"):
        return []
    version = str(app["version"]) + (f" ({app['label']})" if app.get("label") else "")
    rows: list[tuple[str, object]] = [("app", version)]
    if app.get("phase"):
        rows.append(("update", f"{app['phase']}, previous app {app.get('previous') or 'unknown'}"))
    if app.get("last_rollback"):
        rows.append(("last rollback", f"{app['last_rollback']} ({app.get('rollbacks', 0)} in all)"))
    if app.get("ota_port"):
        rows.append(("updates over the air", f"port {app['ota_port']}"))
    return rows


# settings that are secrets: kept in the device's secrets store (never read back) and the inventory
SECRET_SETTINGS = {"wifi_password": (8, 63), "mqtt_password": (0, 255)}


def _connect_signed(url: str, baud: int, inventory: Path | str | None):
    """A console client; on a locked board it signs with the admin key from the inventory."""
    client, hello = device.connect(url, baud)
    if hello.get("locked"):
        from loraspot.provision.provision import held_admin_key

        try:
            client.admin_key, _ = held_admin_key(hello, url, inventory)
        except BaseException:
            client.close()
            raise
    return client, hello


@config_group.command("set")
@port_option
@baud_option
@INVENTORY
@click.argument("key")
@click.argument("value", required=False)
@click.pass_obj
def config_set_cmd(ctx, url: str, baud: int, inventory: Path | str | None, key: str, value: str | None) -> None:
    """Set KEY to VALUE (JSON or text). wifi_password and mqtt_password go to the secrets store
    (asked for, hidden, when VALUE is left out); a locked board is signed for with the admin key."""
    if key in SECRET_SETTINGS:
        _set_secret(ctx, url, baud, inventory, key, value)
        return
    if value is None:
        raise click.UsageError("give a VALUE")
    client, _ = _connect_signed(url, baud, inventory)
    try:
        stored = device.config_set(client, {key: _parse_value(value)})
    finally:
        client.close()
    if ctx.json:
        ctx.emit(stored)
    else:
        click.echo(f"{key} = {json.dumps(stored[key])}")


@config_group.command("push")
@options.ports("Serial port path or URL of a board to change; repeat for several.")
@click.option("--all", "every", is_flag=True, help="Every detected board.")
@click.option("--role", type=click.Choice(["node", "hotspot", "idle"]), default=None,
              help="Only the boards in this role (the others are listed as skipped).")
@click.option("--reboot", "restart", is_flag=True, help="Restart each changed board (role and radio changes take "
              "effect at a restart).")
@baud_option
@INVENTORY
@click.argument("settings", nargs=-1, required=True, metavar="KEY=VALUE...")
@click.pass_obj
def config_push_cmd(ctx, ports: tuple[str, ...], every: bool, role: str | None, restart: bool, baud: int,
                    inventory: Path | str | None, settings: tuple[str, ...]) -> None:
    """The same settings to a selection of boards at once, with a result per board. Every value is
    checked by the firmware's own rules before any board is touched; a locked board is signed for
    with the admin key from the inventory."""
    from concurrent.futures import ThreadPoolExecutor

    from loraspot.errors import LoraspotError
    from loraspot.flash.flasher import resolve_targets
    from loraspot.resources import firmware_module

    schema = firmware_module("spot/schema.py")
    # the hotspot's keys have a table of their own, which a board checks them by (spot/config.py)
    hotspot_keys = firmware_module("spot/schema_hotspot.py").SCHEMA
    values: dict = {}
    for item in settings:  # read and checked once, here, before any board
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise click.BadParameter(f"{item!r}: give KEY=VALUE", param_hint="KEY=VALUE")
        if key in SECRET_SETTINGS:
            raise click.BadParameter(f"{key} is a secret: set it board by board with `loraspot config set` (it is "
                                     "kept with each board's row in the inventory)", param_hint="KEY=VALUE")
        try:
            table = hotspot_keys if key in hotspot_keys and key not in schema.SCHEMA else schema.SCHEMA
            values[key] = schema.check(key, _parse_value(text), table)
        except Exception as e:  # the firmware's ConfigError(code, message)
            raise click.BadParameter(str(e.args[-1] if e.args else e), param_hint="KEY=VALUE") from None
    targets = [t.port for t in resolve_targets(list(ports), every, None)]

    def one(port: str) -> dict:
        row: dict = {"port": port, "result": "failed"}
        try:
            client, hello = _connect_signed(port, baud, inventory)
        except (LoraspotError, OSError) as e:
            return {**row, "error": str(e)}
        try:
            row.update(board=hello.get("board"), id=hello.get("id"), role=hello.get("role"))
            if role is not None and hello.get("role") != role:
                return {**row, "result": "skipped", "error": f"role {hello.get('role')}"}
            row["values"] = device.config_set(client, values)
            if restart:
                device.reboot(client, greet=False)
            row["result"] = "changed"
        except (LoraspotError, OSError) as e:
            row["error"] = str(e)
        finally:
            client.close()
        return row

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        rows = list(pool.map(one, targets))
    if ctx.json:
        ctx.emit(rows)
    else:
        table = ui.table("port", "board", "id", "role", "result")
        for r in rows:
            colour = {"changed": "green", "skipped": "dim"}.get(r["result"], "red")
            table.add_row(r["port"], str(r.get("board") or "-"), str(r.get("id") or "-"), str(r.get("role") or "-"),
                          f"[{colour}]{r['result']}[/]" + (f": {r['error']}" if r.get("error") else ""))
        ui.print_table(ctx.out, table)
    failed = [r for r in rows if r["result"] == "failed"]
    if failed:
        raise LoraspotError(f"{len(failed)} of {len(rows)} boards were not changed; fix the cause and push again "
                            "(the others keep the new settings)")


def _set_secret(ctx, url: str, baud: int, inventory: Path | str | None, key: str, value: str | None) -> None:
    from loraspot.provision.provision import ProvisionError

    if value is None:
        value = click.prompt(key.replace("_", " "), hide_input=True, confirmation_prompt=True)
    lo, hi = SECRET_SETTINGS[key]
    if not lo <= len(value.encode()) <= hi:
        raise ProvisionError(f"{key} must have {lo} to {hi} characters (bytes)")
    client, hello = _connect_signed(url, baud, inventory)
    try:
        client.request("keys.set", {"kind": key, "value": value.encode().hex()})
    finally:
        client.close()
    noted = _note_secret(hello, inventory, key, value.encode())
    if ctx.json:
        ctx.emit({key: "set", "inventory": noted})
    else:
        click.echo(f"{key} = (set; never shown){'' if noted else ' - not in an inventory'}")


def _note_secret(hello: dict, inventory: Path | str | None, kind: str, value: bytes) -> bool:
    """Keep the secret with the board's row when an inventory knows the board."""
    from loraspot.provision.inventory import Inventory, inventory_target

    target = inventory_target(inventory)
    if isinstance(target, Path) and not target.exists():
        return False
    with Inventory(target) as inv:
        known = inv.by_mac(str(hello.get("id", "")))
        if known is None:
            return False
        inv.set_secret(known.dev_eui, kind, value)
    return True


@click.command("reboot")
@port_option
@baud_option
@INVENTORY
@click.pass_obj
def reboot_cmd(ctx, url: str, baud: int, inventory: Path | str | None) -> None:
    """Restart the board (role and config changes take effect); waits until it is back, also
    when a board on native USB comes back under another port name."""
    from loraspot import transport
    from loraspot.errors import DeviceReset, DeviceTimeout, PortError

    before = transport.port_info(url)
    client, _ = _connect_signed(url, baud, inventory)
    try:
        with client:
            hello = device.reboot(client, greet=False)  # the boot event: it is back
            try:
                hello = client.hello()
            except LoraspotError:  # a node short of heap while it joins: the boot event says enough
                pass
    except (PortError, DeviceTimeout, DeviceReset, OSError):
        again = transport.wait_again(before) if before is not None else None
        if again is None or again.url == url:
            raise
        url = again.url
        client, hello = device.connect(url, baud)
        client.close()
    if ctx.json:
        ctx.emit(hello)
    else:
        role = f" as {hello['role']}" if hello.get("role") else ""
        click.echo(f"{url}: back up{role} (boot {hello.get('boot')}, reset cause {hello.get('reset')})")


class SelftestFailed(LoraspotError):
    exit_code = 1


@click.command("selftest")
@options.ports(help="Serial port path or URL of a board running loraspot; repeat for several boards.")
@click.option("--all", "every", is_flag=True, help="Every detected board.")
@INVENTORY
@click.pass_obj
def selftest_cmd(ctx, ports: tuple[str, ...], every: bool, inventory: Path | str | None) -> None:
    """Factory self-test, several boards in parallel: radio identity and register read-back, the
    noise floor on the board's channel (receive only), I2C scan, one reading of each sensor, a
    filesystem write and read-back, free heap, battery, GPS sentences. A board running a role
    restarts into a test boot and back. Results are kept in the inventory; the exit status is 1
    if any board fails."""
    from loraspot import selftest
    from loraspot.flash import flasher

    targets = [t.port for t in flasher.resolve_targets(list(ports), every, None)]
    results = selftest.run_all(targets)
    selftest.keep(results, inventory)
    if ctx.json:
        ctx.emit([r.as_dict() for r in results] if len(results) > 1 else results[0].as_dict())
    else:
        table = ui.table("port", "board", "id", "result", "checks")
        for r in results:
            if r.error:
                detail = r.error
            elif r.ok:
                detail = ", ".join(c["name"] for c in r.checks)
            else:
                detail = "; ".join(f"{c['name']}: {c.get('detail', '')}" for c in r.failed())
            verdict = "[green]pass[/]" if r.ok else "[red]FAIL[/]"
            table.add_row(r.port, r.board, r.mac, verdict, detail)
        ui.print_table(ctx.out, table)
    failed = [r for r in results if not r.ok]
    if failed:
        raise SelftestFailed(f"{len(failed)} of {len(results)} boards failed the self-test")


def register(cli: click.Group) -> None:
    cli.add_command(selftest_cmd)
    cli.add_command(info_cmd)
    cli.add_command(config_group)
    cli.add_command(reboot_cmd)
