"""Human output that is never cut: tables whose cells fold instead of ending in "…", full width
when the output is a file or a pipe (where a terminal's width means nothing), and records of
field/value pairs as plain lines (a key on one line can be copied whole, whatever the width)."""

from __future__ import annotations

from collections.abc import Iterable

import click
from rich.console import Console
from rich.table import Table

# when not a terminal: wide enough that no table of ours is ever folded into a file
PIPE_WIDTH = 1000


def console(stderr: bool = False) -> Console:
    c = Console(stderr=stderr)
    if c.is_terminal:
        return c
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


def table(*columns: str, **kw) -> Table:
    """A table whose cells fold onto more lines on a narrow terminal, never cut."""
    t = Table(**kw)
    for c in columns:
        t.add_column(c, overflow="fold")
    return t


def record(pairs: Iterable[tuple[str, object]]) -> None:
    """Field/value lines, the values whole: `field  value`, names aligned."""
    items = [(k, "" if v is None else str(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    for k, v in items:
        click.echo(f"{k.ljust(width)}  {v}".rstrip())


def print_table(out: Console, t: Table) -> None:
    """The table when it fits the terminal; otherwise one block of `column: value` lines per
    row (a terminal folds a long value; its characters stay together for copying)."""
    from rich.measure import Measurement

    natural = Measurement.get(out, out.options.update_width(PIPE_WIDTH), t).maximum
    if natural <= out.width:
        out.print(t)
        return
    headers = [str(c.header) for c in t.columns]
    cells = [list(c.cells) for c in t.columns]
    for r in range(t.row_count):
        for h, col in zip(headers, cells, strict=True):
            out.print(f"[bold]{h}:[/] ", end="", soft_wrap=True)
            out.print(col[r], soft_wrap=True)
        out.print()


def human(value: object) -> str:
    """A value as a person reads it, never a Python repr: yes/no, "-" for nothing, decoded
    readings as name=value, lists joined."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, dict):
        if "name" in value and "value" in value:
            return f"{value['name']}={human(value['value'])}"
        return ", ".join(f"{k}={human(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "; ".join(human(v) for v in value) if value else "-"
    return str(value)


def fields(d: dict, skip: tuple[str, ...] = ()) -> str:
    """key=value pairs of an event, for one line of human output."""
    return " ".join(f"{k}={human(v)}" for k, v in d.items() if k not in skip)
