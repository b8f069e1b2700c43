"""``flagstaff webhooks``: subscriptions, their delivery log and redelivery (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, esc, state, table

app = typer.Typer(
    help="Webhooks (admin).  Example: flagstaff webhooks create https://hooks.example.com/x "
    "--event 'flag.*'",
    no_args_is_help=True,
)

IdArg = Annotated[int, typer.Argument(help="webhook id")]
Listed = Annotated[list[str] | None, typer.Option()]


def _show(console: Console, items: list[dict[str, Any]]) -> None:
    rows = [(w["id"], w["url"], w["format"], ", ".join(w["events"]), ", ".join(w["flags"]) or "*",
             ", ".join(w["environments"]) or "*", ", ".join(w["tags"]) or "*", w["active"])
            for w in items]  # fmt: skip
    console.print(table(None, ["id", "url", "format", "events", "flags", "envs", "tags", "active"],
                        rows))


@app.command("list")
def list_webhooks(ctx: typer.Context, output: OutputOption = None) -> None:
    """List subscriptions.

    Example: flagstaff webhooks list
    """
    st = state(ctx)
    with st.client() as client:
        items = client.get("/webhooks")["items"]
    emit(st, output, items, lambda con: _show(con, items))


@app.command("create")
def create(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="where to POST events (http or https)")],
    event: Annotated[list[str] | None, typer.Option("--event", help="event pattern, e.g. flag.* or schedule.failed (repeat; default all)")] = None,
    flag: Annotated[list[str] | None, typer.Option("--flag", help="only these flags (repeat)")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="only these environments (repeat)")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="only flags with these tags (repeat)")] = None,
    slack: Annotated[bool, typer.Option("--slack", help="send Slack-compatible messages")] = False,
    message: Annotated[str | None, typer.Option("--message", "-m", help="description")] = None,
    output: OutputOption = None,
) -> None:
    """Subscribe a URL to events; prints the signing secret once.

    Example: flagstaff webhooks create https://hooks.slack.com/services/T/B/X --slack --event flag.killed
    """
    body = {"url": url, "events": event or ["*"], "flags": flag or [], "environments": env or [],
            "tags": tag or [], "format": "slack" if slack else "json", "description": message or ""}
    st = state(ctx)
    with st.client() as client:
        made = client.send("POST", "/webhooks", body)

    def show(console: Console) -> None:
        _show(console, [made])
        console.print(f"signing secret (shown once): {esc(made['secret'])}", highlight=False)

    emit(st, output, made, show)


@app.command("update")
def update(
    ctx: typer.Context,
    webhook_id: IdArg,
    url: Annotated[str | None, typer.Option(help="new URL")] = None,
    active: Annotated[bool | None, typer.Option("--active/--inactive", help="pause or resume")] = None,
    output: OutputOption = None,
) -> None:
    """Change a subscription's URL or pause/resume it.

    Example: flagstaff webhooks update 1 --inactive
    """
    body: dict[str, Any] = {}
    if url:
        body["url"] = url
    if active is not None:
        body["active"] = active
    if not body:
        raise CliError("nothing to change: give --url and/or --active/--inactive")
    st = state(ctx)
    with st.client() as client:
        made = client.send("PATCH", path("webhooks", str(webhook_id)), body)
    emit(st, output, made, lambda con: _show(con, [made]))


@app.command("delete")
def delete(ctx: typer.Context, webhook_id: IdArg, output: OutputOption = None) -> None:
    """Delete a subscription and its delivery log.

    Example: flagstaff webhooks delete 1
    """
    st = state(ctx)
    with st.client() as client:
        done = client.send("DELETE", path("webhooks", str(webhook_id)))
    emit(st, output, done, lambda con: con.print(f"webhook {webhook_id} deleted"))


@app.command("ping")
def ping(ctx: typer.Context, webhook_id: IdArg, output: OutputOption = None) -> None:
    """Queue a ping delivery to check the receiver.

    Example: flagstaff webhooks ping 1
    """
    st = state(ctx)
    with st.client() as client:
        queued = client.send("POST", path("webhooks", str(webhook_id), "ping"))
    emit(st, output, queued, lambda con: con.print(
        f"ping queued as delivery {queued['id']}; see: flagstaff webhooks deliveries {webhook_id}"))


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    webhook_id: IdArg,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed")] = None,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 50,
    output: OutputOption = None,
) -> None:
    """The delivery log: status, attempts, last response code and latency.

    Example: flagstaff webhooks deliveries 1 --status failed
    """
    st = state(ctx)
    with st.client() as client:
        items = client.get(path("webhooks", str(webhook_id), "deliveries"), status=status,
                           limit=limit)["items"]
    rows = [(d["id"], d["event"], d["status"], d["attempts"], d["response_code"],
             d["latency_ms"], d["last_error"] or "", d["created_at"]) for d in items]
    emit(st, output, items, lambda con: con.print(table(
        None, ["id", "event", "status", "attempts", "code", "ms", "last error", "queued"], rows)))


@app.command("redeliver")
def redeliver(
    ctx: typer.Context,
    webhook_id: IdArg,
    delivery_id: Annotated[int, typer.Argument(help="delivery id (from `deliveries`)")],
    output: OutputOption = None,
) -> None:
    """Send a delivered or failed delivery again.

    Example: flagstaff webhooks redeliver 1 42
    """
    st = state(ctx)
    with st.client() as client:
        queued = client.send(
            "POST", path("webhooks", str(webhook_id), "deliveries", str(delivery_id), "redeliver"))
    emit(st, output, queued, lambda con: con.print(
        f"delivery {delivery_id} queued again as delivery {queued['id']}"))


@app.command("rotate-secret")
def rotate_secret(ctx: typer.Context, webhook_id: IdArg, output: OutputOption = None) -> None:
    """Replace the signing secret; prints the new one once.

    Example: flagstaff webhooks rotate-secret 1
    """
    st = state(ctx)
    with st.client() as client:
        made = client.send("POST", path("webhooks", str(webhook_id), "rotate-secret"))
    emit(st, output, made, lambda con: con.print(
        f"new signing secret (shown once): {esc(made['secret'])}", highlight=False))
