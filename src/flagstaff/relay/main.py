"""Running a relay: ``run(config, host=, port=)`` serves it under uvicorn until interrupted."""

from __future__ import annotations

import logging

import uvicorn

from flagstaff.realtime import stream_settings
from flagstaff.realtime.memory import tune_allocator
from flagstaff.relay.app import create_relay_app
from flagstaff.relay.service import RelayConfig
from flagstaff.server.coalesced_writes import HTTP_PROTOCOL
from flagstaff.server.listen import bind
from flagstaff.server.logging_setup import configure_logging


def run(config: RelayConfig, *, host: str = "127.0.0.1", port: int = 8401,
        log_level: str = "INFO") -> None:
    """Serve until SIGINT/SIGTERM (then the last snapshot is on disk before exit)."""
    configure_logging(log_level, "auto")
    if stream_settings(None).return_memory:
        tune_allocator()  # before anything large is allocated (realtime/memory.py)
    # One line per upstream request would drown what matters (the relay logs failures itself).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sock = bind(host, port)  # CannotListen before anything starts
    logging.getLogger("flagstaff.relay").info(
        "relay listening on http://%s:%d, upstream %s", host, port, config.upstream or "none")
    try:
        server = uvicorn.Config(create_relay_app(config), host=host, port=port, log_config=None,
                                access_log=False, http=HTTP_PROTOCOL)
        uvicorn.Server(server).run(sockets=[sock])
    finally:
        sock.close()
