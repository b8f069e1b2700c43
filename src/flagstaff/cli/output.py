"""Shared CLI state and output: Rich tables for people, ``--output json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flagstaff.cli.client import ApiClient
from flagstaff.cli.config import resolve


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
        return ApiClient(resolve(url=self.url, token=self.token, profile=self.profile))

    def wants_json(self, override: Output | None) -> bool:
        return (override or self.output) == Output.json


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:  # a command invoked without the root callback (tests of one command)
        found = ctx.ensure_object(State)
    return found


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    result = Table(title=title, header_style="bold")
    for i, column in enumerate(columns):
        # The first column is the key people copy into the next command: never cut it.
        result.add_column(column, no_wrap=i == 0, overflow="fold")
    for row in rows:
        result.add_row(*(_cell(v) for v in row))
    return result


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "[green]on[/]" if value else "[red]off[/]"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def emit(st: State, override: Output | None, data: Any, render: Callable[[Console], None]) -> None:
    """JSON to stdout for scripts, otherwise whatever ``render`` prints for people."""
    if st.wants_json(override):
        print_json(data)
    else:
        render(st.console)


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)
