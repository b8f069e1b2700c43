"""``flagstaff policy``: approval policies per environment (set by admins)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, state, table

app = typer.Typer(
    help="Approval policies.  Example: flagstaff policy set production --approvals 1",
    no_args_is_help=True,
)


def _show(console: Console, items: list[dict[str, Any]]) -> None:
    rows = [(p["environment"], p["required_approvals"] or "off",
             "yes" if p["author_may_approve"] else "no", p["approver_role"],
             "needs review" if p["kill_requires_review"] else "one action")
            for p in items]  # fmt: skip
    console.print(table(None, ["environment", "approvals", "author may approve", "approver role",
                               "kill"], rows))


@app.command("show")
def show(
    ctx: typer.Context,
    env: Annotated[str | None, typer.Argument(help="environment (default: all)")] = None,
    output: OutputOption = None,
) -> None:
    """Show the approval policy of one or every environment.

    Example: flagstaff policy show production
    """
    st = state(ctx)
    with st.client() as client:
        items = [client.get(path("environments", env, "policy"))] if env else client.get(
            "/policies")["items"]
    emit(st, output, items if not env else items[0], lambda con: _show(con, items))


@app.command("set")
def set_policy(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="environment")],
    approvals: Annotated[int | None, typer.Option(help="approvals needed (0 turns review off)")] = None,
    author_may_approve: Annotated[bool | None, typer.Option("--author-may-approve/--author-may-not-approve")] = None,
    approver_role: Annotated[str | None, typer.Option(help="editor or admin")] = None,
    kill_requires_review: Annotated[bool | None, typer.Option("--kill-requires-review/--kill-without-review", help="remove (or restore) the incident exception")] = None,
    output: OutputOption = None,
) -> None:
    """Set an environment's approval policy (admin); options left out keep their value.

    Example: flagstaff policy set production --approvals 1 --author-may-not-approve
    """
    body: dict[str, Any] = {k: v for k, v in {
        "required_approvals": approvals, "author_may_approve": author_may_approve,
        "approver_role": approver_role, "kill_requires_review": kill_requires_review,
    }.items() if v is not None}  # fmt: skip
    if not body:
        raise CliError("nothing to change: give --approvals, --approver-role, ...")
    st = state(ctx)
    with st.client() as client:
        policy = client.send("PUT", path("environments", env, "policy"), body)
    emit(st, output, policy, lambda con: _show(con, [policy]))
