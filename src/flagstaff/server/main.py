"""Serving: ``run(settings)`` starts uvicorn on the configured host and port.

The port is bound *before* the app starts: a start that cannot listen (the port is taken) fails
before it opens the database, so it neither creates the one-time admin token nor loads the demo
flags; the next start that can listen creates and prints them.

With more than one worker (``settings.worker_count``, docs/operations.md "Workers") this process
becomes the parent: it binds the port, migrates the database and does the first-start duties
(the admin token, printed once; the demo flags) exactly once, then starts the workers, which
share the bound socket and skip those duties.  Each worker follows the change log like a replica
(its own change feed, snapshot cache and streams); the parent restarts a worker that dies, and
a worker whose parent died stops by itself.

A serving process moves what its startup built (modules, routes, models, caches) out of the
garbage collector's sight once startup is done (:func:`settle_after_startup`): those objects
live as long as the process, and every full collection would otherwise walk them all again.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from flagstaff.realtime import stream_settings
from flagstaff.realtime.memory import tune_allocator
from flagstaff.server.app import create_app, first_start_duties
from flagstaff.server.coalesced_writes import HTTP_PROTOCOL
from flagstaff.server.listen import CannotListen, bind
from flagstaff.server.logging_setup import configure_logging
from flagstaff.server.settings import Settings
from flagstaff.store import Store

__all__ = ["CannotListen", "bind", "run", "worker_app"]

# The parent hands its settings (flags and environment already merged) to its workers here:
# they are spawned, fresh interpreters that import the app by name.
WORKER_SETTINGS_ENV = "FLAGSTAFF_WORKER_SETTINGS"
# A worker busy starting up on a loaded machine must not be taken for hung and killed.
WORKER_HEALTHCHECK_SECONDS = 60


def run(settings: Settings | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM shut down gracefully)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    _tune_allocator(settings)
    sock = bind(settings.host, settings.port)
    # uvicorn names its address only when it binds the port itself; here it is given the socket.
    logging.getLogger("flagstaff.server").info(
        "listening on http://%s:%d (console at /ui, API documentation at /docs)",
        settings.host, settings.port)
    try:
        if settings.worker_count > 1:
            _run_workers(settings, sock)
        else:
            # log_config=None keeps our JSON handlers instead of uvicorn's default text logging.
            config = uvicorn.Config(
                settle_after_startup(create_app(settings)), host=settings.host,
                port=settings.port, log_config=None, access_log=False, http=HTTP_PROTOCOL,
            )
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _run_workers(settings: Settings, sock: socket.socket) -> None:
    store = Store.open(settings.database_url)  # migrations run here, once
    try:
        first_start_duties(store, settings)
    finally:
        store.close()
    os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
    config = uvicorn.Config(
        "flagstaff.server.main:worker_app", factory=True, host=settings.host,
        port=settings.port, workers=settings.worker_count, log_config=None, access_log=False,
        http=HTTP_PROTOCOL, timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    Multiprocess(config, sockets=[sock]).run()


def worker_app() -> FastAPI:
    """One worker's app (uvicorn calls this in each spawned worker): the parent's settings,
    without the first-start duties the parent has done."""
    settings = Settings.model_validate_json(os.environ[WORKER_SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format)
    _tune_allocator(settings)
    threading.Thread(
        target=_stop_with_parent, args=(os.getppid(),), daemon=True, name="flagstaff-parent"
    ).start()
    return settle_after_startup(create_app(settings, first_start=False))


def settle_after_startup(app: FastAPI) -> FastAPI:
    """``app``, whose lifespan freezes the heap once startup is done: what exists then is the
    process's for good, and no collection need walk it again.  Under evaluation load a started
    server ran a full collection every several seconds, each walking some 165,000 objects
    for 40 to 90 ms while every answer waited.  For serving processes only: frozen objects are never
    collected, so an app started and stopped many times (tests) must not use it."""
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with started(app) as state:
            gc.collect()  # what startup left as garbage is not kept for good
            gc.freeze()
            yield state

    app.router.lifespan_context = lifespan
    return app


def _tune_allocator(settings: Settings) -> None:
    # Before anything large is allocated: large buffers must not stay in malloc's heaps
    # (realtime/memory.py, docs/streaming.md "What memory is held, and when it comes back").
    if stream_settings(settings).return_memory:
        tune_allocator()


def _stop_with_parent(parent: int) -> None:
    # A parent that was SIGKILLed cannot stop its workers; they would go on serving the port
    # (and holding the database) unsupervised.  Adopted by another process, a worker stops.
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
