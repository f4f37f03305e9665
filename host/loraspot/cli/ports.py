from __future__ import annotations

import dataclasses

import click

from loraspot import transport
from loraspot.cli import ui


@click.command("ports")
@click.pass_obj
def ports_cmd(ctx) -> None:
    """List serial ports, their USB ids and the board profiles that match, and virtual boards."""
    found = transport.list_ports()
    if ctx.json:
        ctx.emit([dataclasses.asdict(p) for p in found])
        return
    table = ui.table("port", "description", "USB id", "boards", "serial number")
    for p in found:
        usb = f"{p.vid:04x}:{p.pid:04x}" if p.vid is not None and p.pid is not None else ""
        table.add_row(p.url, p.description, usb, ", ".join(p.boards) or "-", p.serial_number or "")
    ui.print_table(ctx.out, table) if found else ctx.out.print("no serial ports found")


def register(cli: click.Group) -> None:
    cli.add_command(ports_cmd)
