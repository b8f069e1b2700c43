"""``flagstaff schedules``: changes at a set time (list, show, create, ramp, edit, cancel)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.errors import CliError
from flagstaff.cli.governance.inputs import (
    parse_document,
    parse_duration,
    parse_time,
    parse_weights,
)
from flagstaff.cli.output import OutputOption, emit, esc, state, table

app = typer.Typer(
    help="Scheduled changes.  Example: flagstaff schedules create new-checkout -e production "
    "--at +2h --on",
    no_args_is_help=True,
)

IdArg = Annotated[int, typer.Argument(help="schedule id")]
EnvOption = Annotated[str, typer.Option("--env", "-e", help="environment")]


def what(s: dict[str, Any]) -> str:
    params = s.get("params") or {}
    if s["action"] == "rollout":
        weights = ", ".join(f"{v['variant']} {v['weight']}%" for v in params.get("variations", []))
        return f"rollout {weights}" + (f" (rule {params['rule']})" if params.get("rule") else "")
    if s["action"] == "patch":
        return f"patch {params.get('patch')}"
    if s["action"] == "change_request":
        return f"change request #{s['change_request']}"
    return str(s["action"])


def outcome(s: dict[str, Any]) -> str:
    if s["status"] == "applied":
        return f"version {s['result_version']}, {s['late_ms']} ms late"
    if s["status"] == "failed" and s.get("error"):
        return str(s["error"]["message"])
    return ""


def _rows(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(s["id"], s["flag"], s["environment"], s["at"], what(s), s["status"], outcome(s))
            for s in items]


def _show(console: Console, items: list[dict[str, Any]]) -> None:
    console.print(table(None, ["id", "flag", "env", "at (UTC)", "change", "status", "outcome"],
                        _rows(items)))


@app.command("list")
def list_schedules(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="pending, applied, failed or cancelled")] = None,
    flag: Annotated[str | None, typer.Option(help="only this flag")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    output: OutputOption = None,
) -> None:
    """List schedules by due time.

    Example: flagstaff schedules list --status pending
    """
    st = state(ctx)
    with st.client() as client:
        items = list(client.items("/schedules", status=status, flag=flag, environment=env))
    emit(st, output, items, lambda con: _show(con, items))


@app.command("show")
def show(ctx: typer.Context, schedule_id: IdArg, output: OutputOption = None) -> None:
    """Show one schedule, with its outcome once it ran.

    Example: flagstaff schedules show 3
    """
    st = state(ctx)
    with st.client() as client:
        item = client.get(path("schedules", str(schedule_id)))
    emit(st, output, item, lambda con: _show(con, [item]))


def _change(on: bool, off: bool, rollout: str | None, rule: str | None,
            patch: str | None) -> dict[str, Any]:
    chosen = [n for n, v in (("--on", on), ("--off", off), ("--rollout", rollout),
                             ("--patch", patch)) if v]  # fmt: skip
    if len(chosen) != 1:
        raise CliError("say what to change with exactly one of --on, --off, --rollout, --patch")
    if rule and not rollout:
        raise CliError("--rule goes with --rollout")
    if on or off:
        return {"action": "enable" if on else "disable"}
    if rollout:
        body: dict[str, Any] = {"action": "rollout", "variations": parse_weights(rollout)}
        if rule:
            body["rule"] = rule
        return body
    assert patch is not None
    return {"action": "patch", "patch": parse_document(patch, option="--patch")}


@app.command("create")
def create(
    ctx: typer.Context,
    flag: Annotated[str, typer.Argument(help="flag key")],
    env: EnvOption,
    at: Annotated[str, typer.Option(help="when: +2h, +30m, or an ISO-8601 time")],
    on: Annotated[bool, typer.Option("--on", help="turn the flag on")] = False,
    off: Annotated[bool, typer.Option("--off", help="turn the flag off")] = False,
    rollout: Annotated[str | None, typer.Option(help="new weights, e.g. true=25,false=75")] = None,
    rule: Annotated[str | None, typer.Option(help="with --rollout: this rule's rollout")] = None,
    patch: Annotated[str | None, typer.Option(help="JSON/YAML merge patch of the configuration (or @file)")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="description")] = None,
    output: OutputOption = None,
) -> None:
    """Schedule a change to one flag in one environment.

    Example: flagstaff schedules create new-checkout -e production --at 2030-01-01T09:00:00Z --on
    """
    body = {"flag": flag, "environment": env, "at": parse_time(at), "description": message or "",
            **_change(on, off, rollout, rule, patch)}
    st = state(ctx)
    with st.client() as client:
        item = client.send("POST", "/schedules", body)
    emit(st, output, item, lambda con: _show(con, [item]))


@app.command("ramp")
def ramp(
    ctx: typer.Context,
    flag: Annotated[str, typer.Argument(help="flag key")],
    env: EnvOption,
    steps: Annotated[str, typer.Option(help="percentages, e.g. 10,25,50,100")],
    every: Annotated[str, typer.Option(help="time between steps, e.g. 1h")],
    start: Annotated[str, typer.Option(help="first step: +10m or an ISO-8601 time")] = "+1m",
    variant: Annotated[str, typer.Option(help="the variant ramped up")] = "true",
    rest: Annotated[str, typer.Option(help="the variant that gets the remainder")] = "false",
    rule: Annotated[str | None, typer.Option(help="ramp this rule's rollout instead")] = None,
    output: OutputOption = None,
) -> None:
    """A progressive rollout: one rollout schedule per step.

    Example: flagstaff schedules ramp new-checkout -e production --steps 10,25,50,100 --every 1h
    """
    try:
        percents = [float(p) for p in steps.split(",") if p.strip()]
    except ValueError:
        raise CliError(f"--steps must be numbers, e.g. 10,25,50,100 (got {steps!r})") from None
    if not percents or any(not 0 <= p <= 100 for p in percents):
        raise CliError("--steps must be percentages from 0 to 100")
    first = datetime.fromisoformat(parse_time(start, option="--start").replace("Z", "+00:00"))
    gap = parse_duration(every)
    made = []
    st = state(ctx)
    with st.client() as client:
        for n, percent in enumerate(percents):
            share = int(percent) if percent.is_integer() else percent
            body: dict[str, Any] = {
                "flag": flag, "environment": env, "action": "rollout",
                "at": (first + gap * n).astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "description": f"ramp step {n + 1}/{len(percents)}: {variant} {share}%",
                "variations": [{"variant": variant, "weight": share},
                               {"variant": rest, "weight": round(100 - percent, 3)}],
            }
            if rule:
                body["rule"] = rule
            made.append(client.send("POST", "/schedules", body))
    emit(st, output, made, lambda con: _show(con, made))


@app.command("edit")
def edit(
    ctx: typer.Context,
    schedule_id: IdArg,
    at: Annotated[str | None, typer.Option(help="move it: +2h or an ISO-8601 time")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="new description")] = None,
    output: OutputOption = None,
) -> None:
    """Move a pending schedule or change its description.

    Example: flagstaff schedules edit 3 --at +1d
    """
    body: dict[str, Any] = {}
    if at:
        body["at"] = parse_time(at)
    if message is not None:
        body["description"] = message
    if not body:
        raise CliError("nothing to change: give --at and/or --message")
    st = state(ctx)
    with st.client() as client:
        item = client.send("PATCH", path("schedules", str(schedule_id)), body)
    emit(st, output, item, lambda con: _show(con, [item]))


@app.command("cancel")
def cancel(ctx: typer.Context, schedule_id: IdArg, output: OutputOption = None) -> None:
    """Cancel a pending schedule.

    Example: flagstaff schedules cancel 3
    """
    st = state(ctx)
    with st.client() as client:
        item = client.send("DELETE", path("schedules", str(schedule_id)))
    emit(st, output, item, lambda con: con.print(
        f"schedule {item['id']} ({esc(item['flag'])} in {esc(item['environment'])}) cancelled",
        highlight=False))
