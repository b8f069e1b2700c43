"""Shared CLI state and output: Rich tables for people, ``--output json`` for scripts.

Everything that comes from users or the server (keys, names, values, messages) is printed as
text, never as Rich markup: table cells and headers are escaped here, and messages built with
f-strings pass such values through :func:`esc`.  Markup is only ever our own.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from flagstaff.cli.client import ApiClient
from flagstaff.cli.config import resolve

# Words up to this long are never broken across lines in a table cell.
WORD_LIMIT = 32


class Output(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[
    Output | None, typer.Option("--output", "-o", help="table (default) or json for scripts")
]


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    profile: str | None = None
    output: Output = Output.table
    console: Console = field(default_factory=lambda: Console(file=sys.stdout, soft_wrap=True))
    err: Console = field(default_factory=lambda: Console(file=sys.stderr, soft_wrap=True))

    def client(self) -> ApiClient:
        return ApiClient(
            resolve(url=self.url, token=self.token, profile=self.profile), progress=sys.stderr
        )

    def wants_json(self, override: Output | None) -> bool:
        return (override or self.output) == Output.json


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:  # a command invoked without the root callback (tests of one command)
        found = ctx.ensure_object(State)
    return found


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def esc(value: Any) -> str:
    """``value`` as text for a markup string: square brackets are printed, not interpreted."""
    return escape(str(value))


class Fitted:
    """A table that fits the terminal's width even when printed by a soft-wrapping console
    (whose ``no_wrap`` would make every cell one line and the table as wide as its text)."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from console.render(self.table, options.update(no_wrap=False, overflow="fold"))


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Fitted:
    """A table; ``title`` is markup (escape user parts), columns and cells are plain text.

    A cell that should be styled is passed as a :class:`rich.text.Text`.
    """
    # A rule under the header and spaces between columns: the borders of a boxed table cost
    # a 6-column listing 16 characters of an 80-column terminal (two spaces between columns).
    result = Table(
        title=title, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
        collapse_padding=True,
    )
    cells = [[_cell(v) for v in row] for row in rows]
    for i, column in enumerate(columns):
        # No column is narrower than its longest word, so a narrow terminal wraps between
        # words ("development, staging") instead of inside one ("developmen t"); only a word
        # longer than WORD_LIMIT may still be folded.  The first column is the key people copy
        # into the next command: never cut it.
        words = [column, *(word for row in cells if i < len(row) for word in row[i].plain.split())]
        widest = min(max(len(word) for word in words), WORD_LIMIT)
        result.add_column(Text(column), no_wrap=i == 0, overflow="fold", min_width=widest)
    for row in cells:
        result.add_row(*row)
    return Fitted(result)


def styled(text: str, style: str) -> Text:
    """A table cell in a style (plain text: no markup is parsed)."""
    return Text(text, style=style)


def _cell(value: Any) -> Text:
    if isinstance(value, Text):
        return value
    if value is None:
        return Text("-")
    if isinstance(value, bool):
        return Text("on", style="green") if value else Text("off", style="red")
    if isinstance(value, list | tuple):
        # One item a line: a list cell is as wide as its longest item and never needs wrapping.
        return Text("\n".join(str(v) for v in value))
    if isinstance(value, dict):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def emit(st: State, override: Output | None, data: Any, render: Callable[[Console], None]) -> None:
    """JSON to stdout for scripts, otherwise whatever ``render`` prints for people."""
    if st.wants_json(override):
        print_json(data)
    else:
        render(st.console)


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
