"""``flagstaff audit``: the whole audit log, newest first, filtered by time, actor, environment.

``--since`` takes an ISO-8601 date or time (UTC unless it names an offset) or an age such as
``30m``, ``2h`` or ``7d``.  Each record prints as one line (when, who, what, which flag or
object, where) followed by its diff; a kill's reason is shown with it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.diff import render
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, esc, state

AGE = re.compile(r"^(\d+)\s*([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIMIT = 500


def parse_since(raw: str, *, now: datetime | None = None) -> datetime:
    """An age (``2h``) or an ISO-8601 date/time, as an aware UTC moment."""
    text = raw.strip()
    age = AGE.match(text)
    if age:
        moment = (now or datetime.now(UTC)) - timedelta(**{UNITS[age[2]]: int(age[1])})
        return moment.replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"--since {raw!r}: expected an age such as 30m, 2h, 7d or 2w, or a date such as "
            "2026-12-01 or 2026-12-01T09:30"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def audit(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="only newer records: 2h, 7d, or a date like 2026-12-01")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="only this actor's changes")] = None,
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="only changes to this environment's configuration"),
    ] = None,
    key: Annotated[str | None, typer.Option(help="only this flag, segment, ... key")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIMIT, help="at most this many records")
    ] = 50,
    output: OutputOption = None,
) -> None:
    """The audit log across every flag, segment, environment and token, newest first.

    Example: flagstaff audit --since 2h --env production
    """
    st = state(ctx)
    params: dict[str, Any] = {
        "order": "newest",
        "limit": limit,
        "actor": actor,
        "environment": env,
        "key": key,
        "since": parse_since(since).isoformat() if since else None,
    }
    with st.client() as client:
        page = client.get("/audit", **params)
    records: list[dict[str, Any]] = page["items"]

    def show(console: Console) -> None:
        for record in records:
            where = f" in {esc(record['environment'])}" if record.get("environment") else ""
            why = (record.get("context") or {}).get("reason")
            console.print(
                f"[bold]{esc(record.get('created_at'))}[/]  {esc(record.get('actor'))}  "
                f"{esc(record.get('action'))} {esc(record.get('target_kind'))} "
                f"[bold]{esc(record.get('target_key'))}[/]{where}"
                + (f"  reason: {esc(why)}" if why else ""),
                highlight=False,
            )
            for line in render(record.get("diff") or []):
                console.print(line, highlight=False)
        if not records:
            console.print("no audit records match")
        elif page.get("next_cursor"):
            console.print(f"(newest {len(records)} shown; raise --limit or narrow --since for more)")

    emit(st, output, records, show)
