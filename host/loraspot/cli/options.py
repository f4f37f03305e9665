"""Options shared by the commands, as esptool and mpremote users expect them: `--port`/`-p` or
`LORASPOT_PORT` (as `ESPTOOL_PORT`), the port found by itself when exactly one board is attached,
and shell completion of ports and board ids."""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import CompletionItem

from loraspot.store import is_url

ENV_PORT = "LORASPOT_PORT"
_DEFAULT = f"Default: ${ENV_PORT}, or the only board attached."


def complete_ports(ctx, param, incomplete: str) -> list[CompletionItem]:
    from loraspot import transport

    try:
        found = transport.list_ports()
    except Exception:  # completion must never fail loudly
        return []
    items = []
    for p in found:
        for url in filter(None, (p.url, p.reset_url)):
            if url.startswith(incomplete):
                items.append(CompletionItem(url, help=", ".join(p.boards) or p.description))
    return items


def complete_boards(ctx, param, incomplete: str) -> list[CompletionItem]:
    from loraspot import boards

    return [CompletionItem(b) for b in sorted(boards.all_boards()) if b.startswith(incomplete)]


def _one_port(ctx, param, value: str | None) -> str:
    """The port given, else the only board attached; a missing device path is said to be missing."""
    from loraspot import transport

    if value:
        return transport.check_port(value)
    if ctx.resilient_parsing:
        return ""
    from loraspot.flash.flasher import resolve_targets

    return resolve_targets([], False, None)[0].port


def _many_ports(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    from loraspot import transport

    return tuple(transport.check_port(v) for v in value)


def port(dest: str = "port", help: str = "Serial port path or URL (rfc2217://...).", **kw):
    """One board: --port, else $LORASPOT_PORT, else the only board attached."""
    return click.option("--port", "-p", dest, default=None, envvar=ENV_PORT, callback=_one_port,
                        shell_complete=complete_ports, help=f"{help} {_DEFAULT}", **kw)


def ports(help: str = "Serial port path or URL; repeat for several boards."):
    """Several boards: --port repeated, else $LORASPOT_PORT (space-separated)."""
    return click.option("--port", "-p", "ports", multiple=True, envvar=ENV_PORT, callback=_many_ports,
                        shell_complete=complete_ports, help=f"{help} {_DEFAULT}")


def board(**kw):
    kw.setdefault("help", "Board profile (default: detected from the USB id).")
    return click.option("--board", "board_id", default=None, shell_complete=complete_boards, **kw)


class StoreTarget(click.ParamType):
    """A store (--ledger): an SQLite file (a path, expanded) or a PostgreSQL server (a
    postgresql:// URL), told apart once, here."""

    name = "PATH|URL"

    def convert(self, value, param, ctx):
        if isinstance(value, Path):
            return value
        value = str(value).strip()
        if is_url(value):
            return value
        if not value:
            self.fail("give a file or a postgresql:// URL", param, ctx)
        path = Path(value).expanduser()
        if path.is_dir():
            self.fail(f"{path} is a folder: give a file", param, ctx)
        return path


def inventory(help: str, param: str = "inventory", envvar: bool = True):
    """--inventory: an SQLite file or a PostgreSQL server (postgresql://USER@HOST/DB); where None
    means the user's own, LORASPOT_INVENTORY names another (`envvar`)."""
    return click.option("--inventory", param, type=StoreTarget(), default=None,
                        envvar="LORASPOT_INVENTORY" if envvar else None, metavar="PATH|URL",
                        help=help + (" A file or postgresql://USER@HOST/DB (also LORASPOT_INVENTORY)." if envvar
                                     else " A file or postgresql://USER@HOST/DB."))
