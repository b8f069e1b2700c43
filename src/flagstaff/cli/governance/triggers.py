"""``flagstaff triggers``: secret URLs that turn a flag off (for alerting systems)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.output import OutputOption, emit, esc, state, table

app = typer.Typer(
    help="Incoming triggers.  Example: flagstaff triggers create new-checkout -e production",
    no_args_is_help=True,
)


@app.command("create")
def create(
    ctx: typer.Context,
    flag: Annotated[str, typer.Argument(help="flag key")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment")],
    name: Annotated[str | None, typer.Option(help="what calls it, e.g. 'error-rate alert'")] = None,
    output: OutputOption = None,
) -> None:
    """Create a URL that turns the flag off when POSTed to; prints it once.

    Example: flagstaff triggers create new-checkout -e production --name "error-rate alert"
    """
    st = state(ctx)
    with st.client() as client:
        made = client.send("POST", path("flags", flag, "environments", env, "triggers"),
                           {"name": name} if name else None)

    def show(console: Console) -> None:
        console.print(f"trigger {made['id']}: POST this URL to turn {esc(flag)} off in {esc(env)} "
                      "(shown once; keep it secret):", highlight=False)
        console.print(made["url"], markup=False, highlight=False, soft_wrap=True)

    emit(st, output, made, show)


@app.command("list")
def list_triggers(
    ctx: typer.Context,
    flag: Annotated[str | None, typer.Option(help="only this flag")] = None,
    output: OutputOption = None,
) -> None:
    """List triggers (never their URLs).

    Example: flagstaff triggers list --flag new-checkout
    """
    st = state(ctx)
    with st.client() as client:
        items = client.get("/triggers", flag=flag)["items"]
    rows = [(t["id"], t["flag"], t["environment"], t["name"], t["fire_count"], t["last_fired_at"],
             "revoked" if t["revoked_at"] else "live") for t in items]
    emit(st, output, items, lambda con: con.print(table(
        None, ["id", "flag", "env", "name", "calls", "last call", "state"], rows)))


@app.command("revoke")
def revoke(
    ctx: typer.Context,
    trigger_id: Annotated[str, typer.Argument(help="trigger id (trg_...)")],
    output: OutputOption = None,
) -> None:
    """Revoke a trigger: its URL stops working.

    Example: flagstaff triggers revoke trg_0123456789abcdef
    """
    st = state(ctx)
    with st.client() as client:
        done = client.send("DELETE", path("triggers", trigger_id))
    emit(st, output, done, lambda con: con.print(f"trigger {done['id']} revoked"))
