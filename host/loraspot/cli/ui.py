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
