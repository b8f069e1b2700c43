"""The OFREP event stream (ADR-0008): ``GET /ofrep/v1/event-stream?token=...``.

The bulk evaluation answer to an SDK key carries ``eventStreams``: one ``sse`` entry whose
``endpoint.requestUri`` is this path with a short-lived signed token (:mod:`flagstaff.browser.stream_tokens`);
the provider joins it to the origin of its own OFREP base URL, so the URL stays right behind a
proxy or a TLS terminator.  The stream sends OFREP's message format only:

```
id: 42
event: message
data: {"type":"refetchEvaluation","etag":"\\"<installation>-42\\"","lastModified":1771622898}
```

when a change can alter this key's answers (:mod:`flagstaff.browser.refetch` decides; client-side keys hear
about client-side flags only), plus an id-only block on connect so a reconnect's
``Last-Event-ID`` resumes where the page was.  ``etag`` and ``lastModified`` come back as
``flagConfigEtag``/``flagConfigLastModified`` on the re-fetch, which the bulk route honours.

Connections are subscribers of the process's change feed on their own channel (the feed gives
them keepalives, maximum ages and the shutdown) and are served ahead of FastAPI's routing like
``/stream``, so each costs a few KiB.  Anything but a clean success falls through to the route,
which answers it in OFREP's shapes: 401 for a missing, forged or expired token or a revoked
key, 403 for an origin the key's environment does not allow.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response
from starlette.types import Scope

from flagstaff.browser.ofrep_stream import EVENT_STREAM_PATH, descriptor, publish, subscribe
from flagstaff.browser.refetch import RefetchTracker
from flagstaff.browser.stream_tokens import MAX_REMEMBERED, TOKEN_PARAM, StreamTokens
from flagstaff.errors import FlagstaffError, NotFound, Unauthorized, Unavailable
from flagstaff.realtime import Change, ChangeFeed, parse_last_event_id
from flagstaff.realtime.sse import EventStreamResponse
from flagstaff.server.auth import SDK_CLIENT, SDK_KINDS, Principal, principal_from
from flagstaff.server.browser.guard import check_origin_of

router = APIRouter(tags=["ofrep"])


class OfrepStreams:
    """The event streams of one process: token issuing, relevance tracking, subscriptions."""

    def __init__(self, *, window_seconds: int) -> None:
        self.window_seconds = window_seconds
        self.tracker: RefetchTracker | None = None
        self.tokens: StreamTokens | None = None
        self._descriptors: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def start(self, *, installation_id: str, signing_key: str) -> None:
        self.tracker = RefetchTracker(installation_id=installation_id)
        self.tokens = StreamTokens(signing_key, window_seconds=self.window_seconds)

    def event_streams(self, root_path: str, principal: Principal) -> list[dict[str, Any]] | None:
        """The ``eventStreams`` of a bulk answer to ``principal`` (SDK keys only)."""
        if self.tokens is None or principal.kind not in SDK_KINDS or not principal.environment:
            return None
        token = self.tokens.issue(token_id=principal.token_id, environment=principal.environment)
        # The same token all window long, so the same descriptor: built once (shared and
        # never modified by callers, which only encode it).
        found = self._descriptors.get((root_path, token))
        if found is None:
            if len(self._descriptors) >= MAX_REMEMBERED:
                self._descriptors.clear()
            found = self._descriptors[(root_path, token)] = descriptor(root_path, token)
        return found

    async def on_changes(self, feed: ChangeFeed, page: Sequence[Change]) -> None:
        """Every committed change, in order: notify the pages it concerns."""
        if self.tracker is None:
            return
        await publish(self.tracker, feed, page)

    async def open(self, app: Any, headers: Headers, query: QueryParams, path: str) -> Response:
        """Subscribe the connection a request asks for, or raise why not."""
        realtime = getattr(app.state, "realtime", None)
        feed: ChangeFeed | None = getattr(realtime, "feed", None)
        if feed is None or self.tracker is None or self.tokens is None:
            raise Unavailable("the event stream is not running yet; try again")
        grant = self.tokens.verify(query.get(TOKEN_PARAM))
        if grant is None:
            raise Unauthorized(
                "this event-stream URL is not valid or has expired: re-fetch the bulk "
                "evaluation for a new one")
        store = app.state.store
        try:
            record = await anyio.to_thread.run_sync(partial(store.get_token, token_id=grant.token_id))
        except NotFound:
            record = None
        if record is None or record.revoked or record.environment != grant.environment:
            raise Unauthorized("the key this event stream was issued for is revoked")
        principal = principal_from(record)
        check_origin_of(app.state, headers.get("origin"), path, principal, grant.environment)
        after_id = parse_last_event_id(headers.get("last-event-id"), field="Last-Event-ID")
        return await subscribe(self.tracker, feed, environment=grant.environment,
                               client=principal.kind == SDK_CLIENT, after_id=after_id,
                               credential=grant.token_id)


def streams_of(app: Any) -> OfrepStreams:
    streams: OfrepStreams = app.state.ofrep_streams
    return streams


async def accept(scope: Scope) -> Response | None:
    """The fast path (``StreamEndpoint``): a clean success served before FastAPI's routing;
    anything else falls through to the route below, which answers it."""
    app: Any = scope.get("app")
    try:
        return await streams_of(app).open(
            app, Headers(scope=scope), QueryParams(scope.get("query_string", b"")),
            scope.get("path", ""))
    except FlagstaffError:
        return None


@router.get(
    EVENT_STREAM_PATH, summary="OFREP event stream: refetchEvaluation when answers may change",
    # Stated, because FastAPI cannot infer it from a response class that takes no status_code.
    status_code=200,
    response_class=EventStreamResponse,
    responses={
        200: {"description": "`text/event-stream` of OFREP messages (ADR-0008)"},
        400: {"description": "`{errorCode, errorDetails}`: bad Last-Event-ID"},
        401: {"description": "`{errorDetails}`: invalid or expired URL, revoked key"},
        403: {"description": "`{errorDetails}`: origin not allowed"},
        429: {"description": "Too many authentication failures from this address"},
        503: {"description": "`{errorDetails}`"},
    },
    # The credential is the signed token in the URL (an EventSource cannot send headers), issued
    # to an SDK key by the bulk evaluation; a bearer token is not looked at.
    openapi_extra={"x-flagstaff-auth": {"kinds": ["sdk-server", "sdk-client"], "role": None,
                                        "credential": "signed-url"}},
)
async def event_stream(
    request: Request,
    token: str = Query(description="issued in the bulk evaluation's eventStreams; short-lived",
                       max_length=512),
) -> Response:
    del token  # read by open() from the query string, as on the fast path
    return await streams_of(request.app).open(
        request.app, request.headers, request.query_params, request.url.path)
