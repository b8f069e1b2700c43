"""``flagstaff changes``: change requests, four eyes (list, show, propose, approve, reject,
comment, apply, cancel)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.diff import render
from flagstaff.cli.errors import CliError
from flagstaff.cli.governance.inputs import parse_document, parse_time, parse_weights
from flagstaff.cli.output import OutputOption, emit, esc, state, table

app = typer.Typer(
    help="Change requests (four eyes).  Example: flagstaff changes list --status open",
    no_args_is_help=True,
)

IdArg = Annotated[int, typer.Argument(help="change request id")]
Message = Annotated[str | None, typer.Option("--message", "-m", help="comment")]


def _summary(console: Console, cr: dict[str, Any]) -> None:
    console.print(
        f"change request [bold]#{cr['id']}[/] {esc(cr['flag'])} in {esc(cr['environment'])}: "
        f"[bold]{cr['status']}[/] ({cr['approvals']}/{cr['required_approvals']} approvals)",
        highlight=False,
    )


def show_change(console: Console, cr: dict[str, Any]) -> None:
    _summary(console, cr)
    if cr.get("description"):
        console.print(f"  {esc(cr['description'])}", highlight=False)
    moved = "" if cr.get("mergeable", True) or cr["status"] not in ("open", "approved") else (
        f"  [red](the flag is now at version {cr.get('current_version')}: applying will conflict)[/]")
    console.print(f"  by {esc(cr['author'])}, against version {cr['base_version']}{moved}",
                  highlight=False)
    for line in render(cr["diff"]):
        console.print(line, highlight=False)
    for review in cr.get("reviews", []):
        comment = f": {esc(review['comment'])}" if review.get("comment") else ""
        console.print(f"  {review['verdict']} by {esc(review['actor'])}{comment}", highlight=False)
    if cr.get("error"):
        console.print(f"  [red]{esc(cr['error']['message'])}[/]", highlight=False)


@app.command("list")
def list_changes(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="open, approved, scheduled, applied, rejected, cancelled or conflict")] = None,
    flag: Annotated[str | None, typer.Option(help="only this flag")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    output: OutputOption = None,
) -> None:
    """List change requests, newest first.

    Example: flagstaff changes list --status open --env production
    """
    st = state(ctx)
    with st.client() as client:
        items = list(client.items("/change-requests", status=status, flag=flag, environment=env))
    rows = [(c["id"], c["flag"], c["environment"], c["status"],
             f"{c['approvals']}/{c['required_approvals']}", c["author"], c["description"])
            for c in items]  # fmt: skip
    emit(st, output, items, lambda con: con.print(
        table(None, ["id", "flag", "env", "status", "approvals", "author", "description"], rows)))


@app.command("show")
def show(ctx: typer.Context, change_id: IdArg, output: OutputOption = None) -> None:
    """Show a change request: its diff, reviews and whether it can still be applied.

    Example: flagstaff changes show 12
    """
    st = state(ctx)
    with st.client() as client:
        cr = client.get(path("change-requests", str(change_id)))
    emit(st, output, cr, lambda con: show_change(con, cr))


@app.command("propose")
def propose(
    ctx: typer.Context,
    flag: Annotated[str, typer.Argument(help="flag key")],
    env: Annotated[str, typer.Option("--env", "-e", help="environment")],
    on: Annotated[bool, typer.Option("--on", help="turn the flag on")] = False,
    off: Annotated[bool, typer.Option("--off", help="turn the flag off")] = False,
    rollout: Annotated[str | None, typer.Option(help="fallthrough rollout, e.g. true=25,false=75")] = None,
    patch: Annotated[str | None, typer.Option(help="JSON/YAML merge patch of the configuration (or @file)")] = None,
    config: Annotated[str | None, typer.Option(help="the whole configuration, JSON/YAML (or @file)")] = None,
    message: Message = None,
    output: OutputOption = None,
) -> None:
    """Propose a change to one flag in one environment (for others to review).

    Example: flagstaff changes propose new-checkout --env production --on -m "launch"
    """
    chosen = [n for n, v in (("--on", on), ("--off", off), ("--rollout", rollout),
                             ("--patch", patch), ("--config", config)) if v]  # fmt: skip
    if len(chosen) != 1:
        raise CliError("say what to change with exactly one of --on, --off, --rollout, --patch, --config")
    body: dict[str, Any] = {"flag": flag, "environment": env, "description": message or ""}
    if config:
        body["config"] = parse_document(config, option="--config")
    elif patch:
        body["patch"] = parse_document(patch, option="--patch")
    elif rollout:
        body["patch"] = {"fallthrough": {"rollout": {"variations": parse_weights(rollout)}}}
    else:
        body["patch"] = {"enabled": on}
    st = state(ctx)
    with st.client() as client:
        cr = client.send("POST", "/change-requests", body)
    def shown(console: Console) -> None:
        show_change(console, cr)
        console.print(f"Reviewers: flagstaff changes approve {cr['id']}")

    emit(st, output, cr, shown)


def _review(action: str, change_id: int, message: str | None, ctx: typer.Context,
            output: Any) -> None:
    st = state(ctx)
    with st.client() as client:
        cr = client.send("POST", path("change-requests", str(change_id), action),
                         {"comment": message} if message is not None else None)
    emit(st, output, cr, lambda con: _summary(con, cr))


@app.command("approve")
def approve(ctx: typer.Context, change_id: IdArg, message: Message = None,
            output: OutputOption = None) -> None:
    """Approve a change request (as the environment's policy allows).

    Example: flagstaff changes approve 12 -m "checked with the payments team"
    """
    _review("approve", change_id, message, ctx, output)


@app.command("reject")
def reject(ctx: typer.Context, change_id: IdArg,
           message: Annotated[str, typer.Option("--message", "-m", help="why (required)")],
           output: OutputOption = None) -> None:
    """Reject a change request, saying why.

    Example: flagstaff changes reject 12 -m "not during the freeze"
    """
    _review("reject", change_id, message, ctx, output)


@app.command("comment")
def comment(ctx: typer.Context, change_id: IdArg,
            message: Annotated[str, typer.Option("--message", "-m", help="the comment")],
            output: OutputOption = None) -> None:
    """Comment on a change request.

    Example: flagstaff changes comment 12 -m "after the 10:00 deploy, please"
    """
    _review("comments", change_id, message, ctx, output)


@app.command("apply")
def apply(
    ctx: typer.Context, change_id: IdArg,
    at: Annotated[str | None, typer.Option(help="apply later: +2h or an ISO-8601 time")] = None,
    output: OutputOption = None,
) -> None:
    """Apply an approved change now (or --at a time); refused if the flag moved since.

    Example: flagstaff changes apply 12 --at +30m
    """
    st = state(ctx)
    body = {"at": parse_time(at)} if at else None
    with st.client() as client:
        cr = client.send("POST", path("change-requests", str(change_id), "apply"), body)

    def show_applied(console: Console) -> None:
        _summary(console, cr)
        if cr["status"] == "applied":
            console.print(f"  {esc(cr['flag'])} is now at version {cr['applied_version']}",
                          highlight=False)
        else:
            console.print(f"  schedule {cr['schedule']} applies it at {body and body['at']}",
                          highlight=False)

    emit(st, output, cr, show_applied)


@app.command("cancel")
def cancel(ctx: typer.Context, change_id: IdArg, output: OutputOption = None) -> None:
    """Withdraw a change request (its author, or an admin).

    Example: flagstaff changes cancel 12
    """
    st = state(ctx)
    with st.client() as client:
        cr = client.send("POST", path("change-requests", str(change_id), "cancel"))
    emit(st, output, cr, lambda con: _summary(con, cr))
