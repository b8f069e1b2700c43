"""Serving browsers: CORS, origins and secure mode per environment, client-side visibility.

Pages use OpenFeature's web SDK with the stock OFREP provider (``routes/ofrep.py``) and record
exposures and conversions through ``/exposures`` and ``/track`` (``routes/ingest.py``).  This
package holds what those routes need to serve a page safely:

* :mod:`~flagstaff.server.browser.access`: each environment's allowed origins and secure-mode
  secret, read from the store and kept in memory;
* :mod:`~flagstaff.server.browser.guard`: a request's origin and secure-mode checks once its key
  names the environment;
* :mod:`~flagstaff.server.browser.ingestion`: beacons, rate limits and secure mode for the
  exposures and conversions pages send;
* :mod:`~flagstaff.server.browser.eventstream`: the OFREP event stream (ADR-0008), with
  :mod:`flagstaff.browser.refetch` deciding which changes concern which pages and
  :mod:`flagstaff.browser.stream_tokens` signing its URLs.

The decisions themselves (CORS, origins, secure mode, which flags a page sees, which changes
concern it) are in :mod:`flagstaff.browser`, which holds no store and is shared with relays.

docs/browser.md is the guide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.middleware import Middleware

from flagstaff.browser.cors import BrowserCorsMiddleware, RefusalLog
from flagstaff.browser.ofrep_stream import EVENT_STREAM_PATH
from flagstaff.browser.origins import origins_setting
from flagstaff.browser.visibility import ClientView
from flagstaff.realtime.sse import RawSendMiddleware, StreamEndpoint
from flagstaff.server.browser import eventstream
from flagstaff.server.browser.access import AccessPolicy
from flagstaff.server.browser.ingestion import IngestLimiter

if TYPE_CHECKING:
    from fastapi import FastAPI

    from flagstaff.server.settings import Settings
    from flagstaff.store import Store


def install(app: FastAPI, settings: Settings) -> None:
    """Add the CORS layer and the shared browser state (the store comes with the lifespan)."""
    policy = AccessPolicy(
        lambda: app.state.store, global_origins=origins_setting(settings.cors_origin_list),
        refresh_seconds=settings.browser_access_refresh_seconds,
    )
    refusals = RefusalLog()
    app.state.access_policy = policy
    app.state.cors_refusals = refusals
    app.state.client_view = ClientView()
    app.state.ingest_limiter = IngestLimiter(per_minute=settings.browser_ingest_batches_per_minute)
    streams = eventstream.OfrepStreams(window_seconds=settings.browser_stream_token_seconds)
    app.state.ofrep_streams = streams
    app.state.change_observers = [*getattr(app.state, "change_observers", []), streams.on_changes]
    app.include_router(eventstream.router)
    app.add_middleware(
        BrowserCorsMiddleware, policy=policy, refusals=refusals,
        max_age=settings.cors_max_age_seconds,
    )


def install_event_stream(app: FastAPI) -> None:
    """After the real-time layer: serve the OFREP event stream ahead of routing, with the raw
    send outermost (as ``/stream``; see ``flagstaff.realtime.sse``)."""
    app.add_middleware(RawSendMiddleware, path=EVENT_STREAM_PATH)
    app.user_middleware.append(
        Middleware(StreamEndpoint, accept=eventstream.accept, path=EVENT_STREAM_PATH)
    )


def start(app: FastAPI, store: Store) -> None:
    """At startup: this database's identity (ETags and stream URLs derive from it)."""
    installation = store.installation()
    app.state.installation_id = installation.id
    app.state.ofrep_streams.start(installation_id=installation.id,
                                  signing_key=installation.signing_key)
