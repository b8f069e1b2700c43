"""``flagstaff serve``: run the server (needs ``flagstaff[server]``, imported only here)."""

from __future__ import annotations

from typing import Annotated

import typer

from flagstaff.cli.errors import CliError


def serve(
    host: Annotated[str | None, typer.Option(help="address to bind (default 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8400)")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="sqlite:///path or postgresql://... (default: ./flagstaff.db)"),
    ] = None,
    insecure_dev: Annotated[
        bool,
        typer.Option("--insecure-dev", help="open write access, localhost only; development only"),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="server processes sharing the port (default: one per core; 1 with --insecure-dev)",
        ),
    ] = None,
) -> None:
    """Start the Flagstaff server; FLAGSTAFF_* environment variables work too.

    Example: flagstaff serve --port 8400 --database-url postgresql://localhost/flagstaff --workers 2
    """
    try:
        from flagstaff.server.main import CannotListen, run
        from flagstaff.server.settings import Settings
    except ImportError as exc:
        raise CliError(
            f"the server is not installed ({exc.name} missing): pip install 'flagstaff[server]'"
        ) from None
    overrides = {"host": host, "port": port, "database_url": database_url, "workers": workers}
    values = {k: v for k, v in overrides.items() if v is not None}
    if insecure_dev:
        values["insecure_dev"] = True
    try:
        run(Settings(**values))  # type: ignore[arg-type]
    except CannotListen as exc:
        raise CliError(str(exc)) from None
