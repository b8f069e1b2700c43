"""``flagstaff relay``: run a relay (needs ``flagstaff[server]``, imported only here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flagstaff.cli.errors import CliError


def relay(
    upstream: Annotated[
        str | None,
        typer.Option(help="the server (or relay) to follow, e.g. http://flagstaff:8400; "
                          "leave out to serve only what --data-dir or --from-file hold"),
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", envvar="FLAGSTAFF_RELAY_KEYS",
                     help="a server-side SDK key (fss_...) per environment to hold; repeat for "
                          "more (or FLAGSTAFF_RELAY_KEYS, space-separated, to keep them out of ps)"),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="where the last snapshots and key list are kept (start with the "
                          "upstream down); default: none, memory only"),
    ] = None,
    from_file: Annotated[
        list[Path] | None,
        typer.Option("--from-file", help="an exported snapshot (a GET /sdk/flags body) per "
                                         "--key, in the same order, used when --data-dir has none"),
    ] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8401,
    key_ttl: Annotated[
        float, typer.Option(min=0.1, help="seconds the upstream's word on a key is trusted; a "
                                          "revoked key stops working within this")] = 30.0,
    buffer_requests: Annotated[
        int, typer.Option(min=1, help="ingestion requests held while the upstream is away")
    ] = 10_000,
) -> None:
    """Run a relay: serve SDKs the server's endpoints for the environments of its keys.

    Example: flagstaff relay --upstream http://127.0.0.1:8400 --key fss_... --data-dir ./relay-data
    """
    try:
        from flagstaff.relay.main import run
        from flagstaff.relay.service import RelayConfig
        from flagstaff.server.listen import CannotListen
    except ImportError as exc:
        raise CliError(
            f"the relay is not installed ({exc.name} missing): pip install 'flagstaff[server]'"
        ) from None
    keys = [k for value in key or () for k in value.split()]
    if not keys:
        raise CliError("a relay needs at least one server-side SDK key: --key fss_...")
    if upstream is None and data_dir is None and not from_file:
        raise CliError("nothing to serve: give --upstream, --data-dir or --from-file")
    config = RelayConfig(upstream=upstream, keys=keys, data_dir=data_dir,
                         from_files=list(from_file or ()), key_ttl=key_ttl,
                         buffer_requests=buffer_requests)
    try:
        run(config, host=host, port=port)
    except CannotListen as exc:
        raise CliError(str(exc)) from None
