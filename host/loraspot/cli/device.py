from __future__ import annotations

import json

import click

from loraspot import device
from loraspot.cli import ui

port_option = click.option("--port", "-p", "url", required=True, help="Serial port path or URL (rfc2217://...).")
BAUD = click.IntRange(300, 5_000_000)  # what USB serial chips and pyserial take
UDP_PORT = click.IntRange(0, 65535)
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
    rows: list[tuple[str, object]] = [(key, hello.get(key)) for key in
                                      ("id", "board", "chip", "role", "name", "fw", "proto", "reset", "boot")]
    crash = hello.get("crash")
    rows.append(("last crash", crash["error"] if crash else "none"))
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


@config_group.command("set")
@port_option
@baud_option
@click.argument("key")
@click.argument("value")
@click.pass_obj
def config_set_cmd(ctx, url: str, baud: int, key: str, value: str) -> None:
    client, _ = device.connect(url, baud)
    try:
        stored = device.config_set(client, {key: _parse_value(value)})
    finally:
        client.close()
    if ctx.json:
        ctx.emit(stored)
    else:
        click.echo(f"{key} = {json.dumps(stored[key])}")


def register(cli: click.Group) -> None:
    cli.add_command(info_cmd)
    cli.add_command(config_group)
