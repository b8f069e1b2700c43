"""``flagstaff admin``: recovery on the machine that owns the database (needs ``flagstaff[server]``).

``reset-token`` is for the person who lost the one-time admin token (or never saw it): it opens
the database directly, not the HTTP API, so it works without any token, and only for someone
who can reach the database with its credentials.  The new token is an ordinary audited token
creation; tokens that already exist are left alone (revoke them with ``flagstaff tokens revoke``).
"""

from __future__ import annotations

import getpass
import socket
from typing import Annotated

import typer

from flagstaff.cli.errors import CliError, ExitCode
from flagstaff.cli.output import state

app = typer.Typer(help="Recovery on the machine that owns the database.", no_args_is_help=True)


@app.command("reset-token")
def reset_token(
    ctx: typer.Context,
    database_url: Annotated[
        str,
        typer.Option(
            "--database-url", envvar="FLAGSTAFF_DATABASE_URL",
            help="the server's database: sqlite:///path or postgresql://...",
        ),
    ],
    name: Annotated[str, typer.Option(help="the new token's name")] = "admin (reset-token)",
) -> None:
    """Create a new admin token directly in the database and print it once (audited).

    Example: flagstaff admin reset-token --database-url sqlite:///flagstaff.db
    """
    try:
        from flagstaff.errors import FlagstaffError
        from flagstaff.store import Store
    except ImportError as exc:
        raise CliError(
            f"the server is not installed ({exc.name} missing): pip install 'flagstaff[server]'"
        ) from None
    actor = f"flagstaff admin reset-token ({getpass.getuser()}@{socket.gethostname()})"
    try:
        store = Store.open(database_url)
    except Exception as exc:  # the driver's many error types all mean "cannot open it"
        raise CliError(f"cannot open the database: {exc}", ExitCode.SERVER) from None
    try:
        _, secret = store.create_token(name=name, kind="management", role="admin", actor=actor)
    except FlagstaffError as exc:
        raise CliError(exc.message) from None
    finally:
        store.close()
    st = state(ctx)
    st.console.print(f"New admin token (shown once, store it now): {secret}", highlight=False, markup=False)
