"""``flagstaff segments|envs|tokens ...``: the resources flags are built from and guarded by."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from flagstaff.cli.client import path
from flagstaff.cli.errors import CliError
from flagstaff.cli.output import OutputOption, emit, esc, state, table
from flagstaff.flagfile import FlagFileError, load_file

segments = typer.Typer(
    help="Manage segments.  Example: flagstaff segments list", no_args_is_help=True
)
envs = typer.Typer(
    help="Manage environments.  Example: flagstaff envs create qa", no_args_is_help=True
)
tokens = typer.Typer(
    help="Manage API tokens (admin).  Example: flagstaff tokens list", no_args_is_help=True
)


@segments.command("list")
def list_segments(ctx: typer.Context, output: OutputOption = None) -> None:
    """List segments.

    Example: flagstaff segments list -o json
    """
    st = state(ctx)
    with st.client() as client:
        items = list(client.items("/segments"))
    rows = [
        (
            s["key"],
            s.get("name"),
            len(s.get("included", [])),
            len(s.get("excluded", [])),
            len(s.get("rules", [])),
        )
        for s in items
    ]
    emit(
        st,
        output,
        items,
        lambda c: c.print(table(None, ["key", "name", "included", "excluded", "rules"], rows)),
    )


@segments.command("get")
def get_segment(ctx: typer.Context, key: str, output: OutputOption = None) -> None:
    """Show one segment.

    Example: flagstaff segments get beta-users
    """
    st = state(ctx)
    with st.client() as client:
        segment = client.get(path("segments", key))
    emit(
        st,
        output,
        segment,
        lambda c: c.print(yaml.safe_dump(segment, sort_keys=False), markup=False, highlight=False),
    )


@segments.command("create")
def create_segment(
    ctx: typer.Context,
    key: Annotated[str | None, typer.Argument(help="segment key (not with -f)")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="create the segments of this flag file")
    ] = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", help="a targeting key always in (repeatable)")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="a targeting key never in (repeatable)")
    ] = None,
    output: OutputOption = None,
) -> None:
    """Create a segment from options, or the segments of a flag file.

    Example: flagstaff segments create beta-users --include user-1 --include user-2
    """
    st = state(ctx)
    if file is not None:
        try:
            bodies = load_file(file).segments
        except FlagFileError as exc:
            raise CliError(str(exc)) from None
    elif key is None:
        raise CliError("give a segment KEY, or -f FILE")
    else:
        bodies = [
            {"key": key, "name": name or key, "included": include or [], "excluded": exclude or []}
        ]
    with st.client() as client:
        created = [client.send("POST", "/segments", body) for body in bodies]
    emit(
        st,
        output,
        created,
        lambda c: c.print("\n".join(f"[green]created[/] segment {esc(s['key'])}" for s in created)),
    )


@segments.command("delete")
def delete_segment(ctx: typer.Context, key: str, output: OutputOption = None) -> None:
    """Delete a segment (refused while a flag or segment uses it).

    Example: flagstaff segments delete beta-users
    """
    st = state(ctx)
    with st.client() as client:
        client.send("DELETE", path("segments", key))
    emit(st, output, {"deleted": key}, lambda c: c.print(f"deleted segment {esc(key)}"))


@envs.command("list")
def list_envs(ctx: typer.Context, output: OutputOption = None) -> None:
    """List environments.

    Example: flagstaff envs list
    """
    st = state(ctx)
    with st.client() as client:
        items = list(client.items("/environments"))
    rows = [(e["key"], e.get("name"), e.get("created_at")) for e in items]
    emit(st, output, items, lambda c: c.print(table(None, ["key", "name", "created"], rows)))


@envs.command("create")
def create_env(
    ctx: typer.Context,
    key: str,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
    output: OutputOption = None,
) -> None:
    """Create an environment (admin).

    Example: flagstaff envs create qa --name "QA"
    """
    st = state(ctx)
    body = {"key": key, **({"name": name} if name else {})}
    with st.client() as client:
        env = client.send("POST", "/environments", body)
    emit(st, output, env, lambda c: c.print(f"[green]created[/] environment {esc(key)}"))


@tokens.command("create")
def create_token(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="what the token is for")],
    kind: Annotated[str, typer.Option(help="management | sdk-server | sdk-client")] = "management",
    role: Annotated[
        str | None, typer.Option(help="admin | editor | viewer (management tokens)")
    ] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="environment (SDK keys)")] = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="print only the secret, for KEY=$(flagstaff tokens create ... -q)"),
    ] = False,
    output: OutputOption = None,
) -> None:
    """Create a token; its secret is shown this once.

    Examples: flagstaff tokens create --name ci --role editor ;
    flagstaff tokens create --name web --kind sdk-client --env production ;
    export FLAGSTAFF_SDK_KEY=$(flagstaff tokens create --name api --kind sdk-server --env production -q)
    """
    st = state(ctx)
    body = {"name": name, "kind": kind, "role": role, "environment": env}
    if kind == "management" and role is None:
        body["role"] = "viewer"
    with st.client() as client:
        token = client.send("POST", "/tokens", {k: v for k, v in body.items() if v is not None})
    if quiet:
        print(token["secret"])
        return

    def show(console: Console) -> None:
        console.print(
            f"[green]created[/] token {esc(token.get('id'))} "
            f"({esc(token.get('kind'))}, {esc(token.get('role') or token.get('environment'))})"
        )
        console.print(
            f"secret (shown once, store it now): [bold]{esc(token.get('secret'))}[/]", highlight=False
        )

    emit(st, output, token, show)


@tokens.command("list")
def list_tokens(ctx: typer.Context, output: OutputOption = None) -> None:
    """List tokens with their last use (never their secrets).

    Example: flagstaff tokens list
    """
    st = state(ctx)
    with st.client() as client:
        items = list(client.items("/tokens"))
    rows = [
        (t.get("id"), t.get("name"), t.get("kind"), t.get("role") or t.get("environment"),
         t.get("last_used_at"), t.get("revoked_at"))
        for t in items
    ]  # fmt: skip
    emit(
        st,
        output,
        items,
        lambda c: c.print(
            table(None, ["id", "name", "kind", "role/env", "last used", "revoked"], rows)
        ),
    )


@tokens.command("revoke")
def revoke_token(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="token id")],
    output: OutputOption = None,
) -> None:
    """Revoke a token at once.

    Example: flagstaff tokens revoke 3f2a...
    """
    st = state(ctx)
    with st.client() as client:
        token = client.send("DELETE", path("tokens", token_id))
    emit(st, output, token, lambda c: c.print(f"revoked token {esc(token_id)}"))
