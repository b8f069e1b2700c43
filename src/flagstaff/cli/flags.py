"""``flagstaff flags ...``: list, inspect, create, toggle, kill, archive, restore, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.diff import render
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, state, table
from flagstaff.flagfile import FlagFileError, load_file

app = typer.Typer(
    help="Manage flags.  Example: flagstaff flags list --tag checkout", no_args_is_help=True
)

KeyArg = Annotated[str, typer.Argument(help="flag key")]
EnvOption = Annotated[str, typer.Option("--env", "-e", help="environment key, e.g. production")]


@app.command("list")
def list_flags(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="only flags with this tag")] = None,
    flag_state: Annotated[str | None, typer.Option("--state", help="active or archived")] = None,
    env: Annotated[
        str | None, typer.Option("--env", "-e", help="show whether each flag is on here")
    ] = None,
    output: OutputOption = None,
) -> None:
    """List flags.

    Example: flagstaff flags list --tag beta --env production
    """
    st = state(ctx)
    with st.client() as client:
        flags = list(client.items("/flags", tag=tag, state=flag_state))

    def show(console: Console) -> None:
        env_column = f"on in {env}" if env else "on in"
        rows = []
        for f in flags:
            envs = f.get("environments", {})
            on = (
                envs.get(env, {}).get("enabled", False)
                if env
                else [e for e, c in envs.items() if c.get("enabled")]
            )
            rows.append(
                (f["key"], f.get("type"), f.get("state"), on, f.get("tags", []), f.get("version"))
            )
        console.print(table(None, ["key", "type", "state", env_column, "tags", "version"], rows))
        console.print(f"{len(flags)} flag(s)")

    emit(st, output, flags, show)


@app.command("get")
def get_flag(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Show one flag's full definition.

    Example: flagstaff flags get new-checkout -o json
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.get(path("flags", key))
    emit(
        st,
        output,
        flag,
        lambda c: c.print(
            yaml.safe_dump(flag, sort_keys=False, allow_unicode=True), markup=False, highlight=False
        ),
    )


@app.command("create")
def create_flag(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="flag key (not with -f)")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="create every flag in this flag file")
    ] = None,
    name: Annotated[str | None, typer.Option(help="display name (default: the key)")] = None,
    flag_type: Annotated[
        str, typer.Option("--type", help="boolean | string | number | json")
    ] = "boolean",
    description: Annotated[str, typer.Option(help="what the flag is for")] = "",
    kind: Annotated[
        str, typer.Option(help="release | experiment | operational | kill-switch | permission")
    ] = "release",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="a tag (repeatable)")] = None,
    owner: Annotated[str, typer.Option(help="owning team or person")] = "",
    variant: Annotated[
        list[str] | None,
        typer.Option("--variant", help="NAME=JSON-VALUE (repeatable; non-boolean flags)"),
    ] = None,
    off_variant: Annotated[
        str | None, typer.Option(help="variant served when off (default: the first)")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Create a flag from options, or every flag in a file.

    Examples: flagstaff flags create dark-mode --tag ui ;
    flagstaff flags create limit --type number --variant low=4 --variant high=15 ;
    flagstaff flags create -f flags.yaml
    """
    st = state(ctx)
    if file is not None:
        if key is not None:
            raise CliError("give either a KEY with options or -f FILE, not both")
        try:
            bodies = load_file(file).flags
        except FlagFileError as exc:
            raise CliError(str(exc)) from None
    elif key is None:
        raise CliError("give a flag KEY, or -f FILE to create the flags of a flag file")
    else:
        bodies = [
            _definition(
                key,
                name,
                flag_type,
                description,
                kind,
                tag or [],
                owner,
                variant or [],
                off_variant,
            )
        ]
    created = []
    with st.client() as client:
        for body in bodies:
            created.append(client.send("POST", "/flags", body))
    emit(
        st,
        output,
        created,
        lambda c: c.print(
            "\n".join(
                f"[green]created[/] flag {f['key']} (version {f.get('version')})" for f in created
            )
        ),
    )


def _definition(
    key: str, name: str | None, flag_type: str, description: str, kind: str,
    tags: list[str], owner: str, variants: list[str], off_variant: str | None,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {
        "key": key,
        "type": flag_type,
        "description": description,
        "kind": kind,
        "tags": tags,
        "owner": owner,
    }
    if name:
        body["name"] = name
    if variants:
        parsed: dict[str, Any] = {}
        for item in variants:
            label, sep, raw = item.partition("=")
            if not sep or not label:
                raise CliError(
                    f"--variant {item!r}: expected NAME=VALUE, e.g. high=15 or on='\"blue\"'"
                )
            try:
                parsed[label] = json.loads(raw)
            except json.JSONDecodeError:
                parsed[label] = raw  # a bare word is a string value
        body["variants"] = parsed
        body["off_variant"] = off_variant or next(iter(parsed))
    elif off_variant:
        body["off_variant"] = off_variant
    return body


@app.command("toggle")
def toggle(
    ctx: typer.Context,
    key: KeyArg,
    env: EnvOption,
    on: Annotated[
        bool | None, typer.Option("--on/--off", help="turn on or off (default: flip)")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Turn a flag on or off in one environment.

    Example: flagstaff flags toggle new-checkout --on --env production
    """
    st = state(ctx)
    with st.client() as client:
        version = None
        if on is None:
            current = client.get(path("flags", key))
            on = not current.get("environments", {}).get(env, {}).get("enabled", False)
            version = current.get("version")
        flag = client.send(
            "PATCH", path("flags", key, "environments", env), {"enabled": on}, if_match=version
        )
    word = "[green]on[/]" if on else "[red]off[/]"
    emit(
        st,
        output,
        flag,
        lambda c: c.print(f"flag {key} is now {word} in {env} (version {flag.get('version')})"),
    )


@app.command("kill")
def kill(ctx: typer.Context, key: KeyArg, env: EnvOption, output: OutputOption = None) -> None:
    """Kill switch: turn a flag off in one environment at once (audited as "killed").

    Example: flagstaff flags kill new-checkout --env production
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.send("POST", path("flags", key, "environments", env, "kill"))
    emit(
        st,
        output,
        flag,
        lambda c: c.print(f"[red]killed[/] flag {key} in {env}: it now serves its off variant"),
    )


@app.command("archive")
def archive(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Archive a flag: it leaves evaluation but stays in the audit log and can be restored.

    Example: flagstaff flags archive old-banner
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.send("DELETE", path("flags", key))
    emit(
        st,
        output,
        flag,
        lambda c: c.print(f"archived flag {key} (flagstaff flags restore {key} brings it back)"),
    )


@app.command("restore")
def restore(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Restore an archived flag.

    Example: flagstaff flags restore old-banner
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.send("POST", path("flags", key, "restore"))
    emit(st, output, flag, lambda c: c.print(f"restored flag {key}"))


@app.command("audit")
def audit(ctx: typer.Context, key: KeyArg, output: OutputOption = None) -> None:
    """Show a flag's history: who changed what, when, as readable diffs.

    Example: flagstaff flags audit new-checkout
    """
    st = state(ctx)
    with st.client() as client:
        records = list(client.items(path("flags", key, "audit")))

    def show(console: Console) -> None:
        for record in records:
            env = f" [{record['environment']}]" if record.get("environment") else ""
            console.print(
                f"[bold]{record.get('created_at')}[/]  {record.get('actor')}  {record.get('action')}{env}",
                highlight=False,
            )
            for line in render(record.get("diff") or []):
                console.print(line, highlight=False)
        if not records:
            console.print("no history")

    emit(st, output, records, show)
