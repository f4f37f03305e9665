from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from loraspot.lorawan.crypto import key_check_value
from loraspot.provision.inventory import Inventory

AES_KINDS = ("app_key", "nwk_key", "nwk_s_key", "app_s_key")


@click.group("inventory")
@click.option("--inventory", "path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Inventory file (default: inventory.sqlite in the user data folder).")
@click.pass_obj
def inventory_group(ctx, path: Path | None) -> None:
    """The device inventory (secrets encrypted at rest)."""
    ctx.inventory_path = path


@inventory_group.command("list")
@click.pass_obj
def list_cmd(ctx) -> None:
    """Devices with the kinds of secrets stored (key check values, never keys)."""
    with Inventory(ctx.inventory_path) as inv:
        rows = []
        for d in inv.devices():
            kinds = inv.secret_kinds(d.dev_eui)
            checks = {k: (key_check_value(inv.secret(d.dev_eui, k)) if k in AES_KINDS else "set") for k in kinds}
            rows.append({"dev_eui": d.dev_eui, "join_eui": d.join_eui, "name": d.name, "board": d.board,
                         "secrets": checks})
    if ctx.json:
        ctx.emit(rows)
        return
    table = Table("DevEUI", "JoinEUI", "name", "board", "secrets (KCV)")
    for r in rows:
        table.add_row(r["dev_eui"], r["join_eui"] or "", r["name"] or "", r["board"] or "",
                      " ".join(f"{k}:{v}" for k, v in r["secrets"].items()))
    ctx.out.print(table if rows else "the inventory is empty")


def register(cli: click.Group) -> None:
    cli.add_command(inventory_group)
