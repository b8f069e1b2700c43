"""``flagstaff envs update|secure-mode-secret`` and ``flagstaff flags client-side``: what
browsers may do (docs/browser.md).

Registered on the ``envs`` and ``flags`` command groups when :mod:`flagstaff.cli` is imported.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from flagstaff.cli import flags, resources
from flagstaff.cli.client import path
from flagstaff.cli.output import OutputOption, emit, esc, state

EnvArg = Annotated[str, typer.Argument(help="environment key, e.g. production")]


def _show_access(access: dict[str, Any]) -> Any:
    def show(console: Console) -> None:
        origins = ", ".join(access.get("allowed_origins") or []) or "none (pages cannot call)"
        mode = "on" if access.get("secure_mode") else "off"
        console.print(f"environment {esc(access['environment'])}", highlight=False)
        console.print(f"  allowed origins: {esc(origins)}", highlight=False)
        console.print(f"  secure mode:     {mode}", highlight=False)

    return show


@resources.envs.command("update")
def update_env(
    ctx: typer.Context,
    key: EnvArg,
    allow_origin: Annotated[list[str] | None, typer.Option(
        "--allow-origin", help="let pages on this origin call (repeatable), e.g. https://app.example.com",
    )] = None,
    disallow_origin: Annotated[list[str] | None, typer.Option(
        "--disallow-origin", help="stop allowing this origin (repeatable)",
    )] = None,
    secure_mode: Annotated[bool | None, typer.Option(
        "--secure-mode/--no-secure-mode",
        help="client-side keys must send a context key signed by your back end",
    )] = None,
    output: OutputOption = None,
) -> None:
    """Show or change what browsers may do in an environment (admin to change).

    Example: flagstaff envs update production --allow-origin https://app.example.com --secure-mode
    """
    st = state(ctx)
    url = path("environments", key, "client-access")
    with st.client() as client:
        access = client.get(url)
        body: dict[str, Any] = {}
        if allow_origin or disallow_origin:
            origins = [o for o in access.get("allowed_origins", [])
                       if o not in {d.rstrip("/") for d in disallow_origin or []}]
            body["allowed_origins"] = origins + [o for o in allow_origin or [] if o not in origins]
        if secure_mode is not None:
            body["secure_mode"] = secure_mode
        if body:
            access = client.send("PATCH", url, body)
    emit(st, output, access, _show_access(access))


@resources.envs.command("secure-mode-secret")
def secure_mode_secret(
    ctx: typer.Context,
    key: EnvArg,
    rotate: Annotated[bool, typer.Option(
        "--rotate", help="replace it (hashes signed with the old one stop working at once)",
    )] = False,
    output: OutputOption = None,
) -> None:
    """Print the secret your back end signs context keys with in secure mode (admin).

    Example: flagstaff envs secure-mode-secret production
    """
    st = state(ctx)
    url = path("environments", key, "secure-mode-secret")
    with st.client() as client:
        answer = client.send("POST", url) if rotate else client.get(url)
    emit(st, output, answer, lambda c: c.print(esc(answer["secret"]), highlight=False))


@flags.app.command("client-side")
def client_side(
    ctx: typer.Context,
    key: flags.KeyArg,
    on: Annotated[bool, typer.Option(
        "--on/--off", help="available to client-side SDK keys (browsers) or not",
    )] = True,
    output: OutputOption = None,
) -> None:
    """Make a flag available to client-side SDK keys (browsers), or stop it.

    Example: flagstaff flags client-side new-checkout --on
    """
    st = state(ctx)
    with st.client() as client:
        flag = client.send("PATCH", path("flags", key), {"client_side": on})
    word = "available to" if on else "hidden from"
    emit(st, output, flag, lambda c: c.print(
        f"flag {esc(key)} is now {word} client-side keys (version {flag.get('version')})"))
