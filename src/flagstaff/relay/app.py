"""The relay's HTTP surface: the server's SDK-facing endpoints, answered from memory.

Same paths, keys, bodies, headers and error shapes as the server (docs/contract.md,
docs/streaming.md): ``GET /sdk/flags`` (ETag = version), ``GET /stream`` and ``GET /ws`` (the
``flagstaff.realtime`` transports over the environment's feed, ``Last-Event-ID`` honoured),
``POST /evaluate``, ``POST /evaluate/all``, OFREP single and bulk with the OFREP event stream
(``GET /ofrep/v1/event-stream``), and ``POST /relay/keys`` and ``GET /relay/access`` so a relay
can be another relay's upstream.  Ingestion (``/track``, ``/exposures``,
``/evaluation-counts``, ``/fleet/reports``) is forwarded upstream (``relay.forward``), a page's
beacon (its client-side key in the body, :mod:`flagstaff.browser.beacons`) included.  There is no
management API: a relay never writes flags.

Keys are checked through :class:`~flagstaff.relay.keys.KeyRing` (the upstream's word, cached).
Client-side keys (pages) are served where the server serves them, with the server's rules
(:mod:`flagstaff.relay.pages`): CORS, each environment's origins and secure mode as the upstream
states them, ``client_side`` flags only; the evaluated bodies are the server's own functions
(``flagstaff.server.evaluation``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from fastapi.security.utils import get_authorization_scheme_param
from prometheus_client import generate_latest
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, QueryParams
from starlette.middleware import Middleware
from starlette.types import Scope

import flagstaff
from flagstaff.browser import beacons
from flagstaff.browser.cors import BrowserCorsMiddleware
from flagstaff.browser.ofrep_stream import EVENT_STREAM_PATH
from flagstaff.browser.origins import origins_setting
from flagstaff.errors import FlagstaffError, Forbidden, Invalid, Unauthorized, Unavailable
from flagstaff.fleet import Report, parse_reports, report_from_headers
from flagstaff.realtime import ChangeFeed, parse_last_event_id
from flagstaff.realtime.sse import (
    RawSendMiddleware,
    StreamEndpoint,
    is_relay,
    subscribe_response,
)
from flagstaff.realtime.websocket import deny, serve_websocket
from flagstaff.relay.forward import PASSED_HEADERS, BufferFull, Pending
from flagstaff.relay.keys import SDK_CLIENT, SDK_SERVER, KeyEntry
from flagstaff.relay.mirror import EnvironmentMirror
from flagstaff.relay.service import Relay, RelayConfig
from flagstaff.server import evaluation
from flagstaff.server.errors import error_payload, install_error_handlers
from flagstaff.server.etags import etag, none_match
from flagstaff.server.limits import (
    NOT_PARSED,
    StreamConnectionLimiter,
    StreamLimitMiddleware,
    parse_checked_body,
    request_limits,
)
from flagstaff.server.middleware import BodyLimitMiddleware
from flagstaff.server.models import EvaluateAllIn, EvaluateIn
from flagstaff.server.ofrep_context import Context
from flagstaff.server.ratelimit import AuthFailureLimiter, AuthRateLimitMiddleware
from flagstaff.server.settings import Settings
from flagstaff.server.snapshots import CachedSnapshot

INGEST_PATHS = ("/track", "/exposures", "/evaluation-counts", "/fleet/reports")
_JSON = "application/json"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _relay(request: Request | WebSocket) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


def _bearer(headers: Headers) -> str | None:
    """The bearer credential, or None (no ``Authorization`` header, or not a bearer one)."""
    scheme, secret = get_authorization_scheme_param(headers.get("authorization"))
    return secret if scheme.lower() == "bearer" and secret else None


def _secret(headers: Headers) -> str:
    secret = _bearer(headers)
    if secret is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return secret


async def _any_key(relay: Relay, headers: Headers) -> KeyEntry:
    entry = await relay.keys.lookup(_secret(headers))
    if entry is None:
        raise Unauthorized("unknown or revoked token")
    return entry


async def _key(relay: Relay, headers: Headers) -> KeyEntry:
    """A server-side key, for the routes only those may call (as at the server)."""
    entry = await _any_key(relay, headers)
    if entry.kind != SDK_SERVER:
        raise Forbidden("this route needs an SDK key of kind sdk-server")
    if headers.get("origin") is not None:
        raise Forbidden("server-side SDK keys must not be used from a browser; use a "
                        "client-side key (fsc_...)", details={"field": "Authorization"})
    return entry


async def server_key(request: Request) -> KeyEntry:
    return await _key(_relay(request), request.headers)


async def sdk_key(request: Request) -> KeyEntry:
    """Either kind of SDK key, for evaluation (page checks come with the context)."""
    return await _any_key(_relay(request), request.headers)


ServerKey = Annotated[KeyEntry, Depends(server_key)]
SdkKey = Annotated[KeyEntry, Depends(sdk_key)]


def _checked(request: Request, entry: KeyEntry, context: dict[str, Any]) -> dict[str, Any]:
    """The server's page checks (origin, secure mode) and the context to evaluate."""
    return _relay(request).pages.checked_context(
        entry, origin=request.headers.get("origin"), path=request.url.path, context=context)


def _held(relay: Relay, entry: KeyEntry, requested: str | None = None,
          ) -> tuple[EnvironmentMirror, ChangeFeed]:
    if requested and requested != entry.environment:
        raise Forbidden(f"this SDK key is bound to {entry.environment!r}, not {requested!r}",
                        details={"field": "environment"})
    held = relay.serving(entry.environment)
    if held is None:
        raise Forbidden(f"this relay does not hold environment {entry.environment!r}")
    if held[0].rejected:
        raise Unavailable(f"the upstream refuses this relay's key for {entry.environment!r} "
                          "(revoked?): the relay no longer serves it")
    if not held[0].ready:
        raise Unavailable(f"the relay has no data for {entry.environment!r} yet")
    return held


def create_relay_app(config: RelayConfig) -> FastAPI:
    settings = Settings()
    relay = Relay(replace(
        config, cors_origins=config.cors_origins or tuple(origins_setting(
            settings.cors_origin_list)),
        stream_token_seconds=settings.browser_stream_token_seconds))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await relay.start()
        try:
            yield
        finally:
            await relay.stop()

    app = FastAPI(title="Flagstaff relay", version=flagstaff.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, strict_content_type=False)
    app.state.relay = relay
    app.state.request_limits = request_limits(settings)
    install_error_handlers(app)
    _routes(app)
    _harden(app, settings)
    # Outside the limits, as at the server: a preflight is answered before them.
    app.add_middleware(BrowserCorsMiddleware, policy=relay.access,
                       refusals=relay.pages.refusals, max_age=settings.cors_max_age_seconds)
    app.add_middleware(RawSendMiddleware)
    app.add_middleware(RawSendMiddleware, path=EVENT_STREAM_PATH)
    app.user_middleware.append(Middleware(StreamEndpoint, accept=_accept_stream))
    app.user_middleware.append(
        Middleware(StreamEndpoint, accept=_accept_event_stream, path=EVENT_STREAM_PATH))
    return app


def _harden(app: FastAPI, settings: Settings) -> None:
    """The server's request limits, with the same settings (docs/reliability.md): body sizes,
    open streams per key (``FLAGSTAFF_MAX_STREAMS_PER_KEY``), and authentication failures per
    address, which also keeps a flood of made-up keys from becoming a flood of
    ``/relay/keys`` questions upstream."""
    # add_middleware wraps: the last added runs first.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       path_limits=dict.fromkeys(INGEST_PATHS, settings.ingest_max_body_bytes))
    app.add_middleware(StreamLimitMiddleware,
                       limiter=StreamConnectionLimiter(settings.max_streams_per_key))
    app.add_middleware(AuthRateLimitMiddleware, limiter=AuthFailureLimiter(
        limit=settings.max_auth_failures, window_seconds=settings.auth_failure_window_seconds))


async def _accept_stream(scope: Scope) -> Response | None:
    """``GET /stream`` ahead of routing (as the server does): a held connection then keeps
    no framework frames in memory.  Failures are answered here in the common shape."""
    relay: Relay = scope["app"].state.relay
    headers = Headers(scope=scope)
    try:
        entry = await _key(relay, headers)
        _mirror, feed = _held(relay, entry)
        after_id = parse_last_event_id(headers.get("last-event-id"), field="Last-Event-ID")
        return await subscribe_response(feed, entry.environment, after_id,
                                        credential=entry.token_id, relay=is_relay(headers))
    except FlagstaffError as exc:
        return JSONResponse(error_payload(exc, "/stream"), status_code=exc.status)


async def _accept_event_stream(scope: Scope) -> Response:
    """``GET /ofrep/v1/event-stream`` ahead of routing, as at the server; failures in OFREP's
    shapes (401 for a bad or expired URL or a revoked key, 403 for an origin)."""
    relay: Relay = scope["app"].state.relay
    try:
        return await relay.pages.open(relay, Headers(scope=scope),
                                      QueryParams(scope.get("query_string", b"")),
                                      EVENT_STREAM_PATH)
    except FlagstaffError as exc:
        return JSONResponse(error_payload(exc, EVENT_STREAM_PATH), status_code=exc.status)


class KeysIn(BaseModel):
    hashes: list[str] = Field(max_length=1000)


def _routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        relay = _relay(request)
        return {
            "status": "ok", "instance": relay.instance,
            "upstream": {"url": relay.upstream.url if relay.upstream else None,
                         "reachable": bool(relay.upstream and relay.upstream.reachable)},
            "environments": [
                {"environment": m.environment, "version": m.version, "ready": m.ready}
                for m in relay.mirrors.values()
            ],
            "ingest": {"pending": relay.forwarder.pending,
                       **asdict(relay.forwarder.counts)},
        }

    @app.get("/ready")
    async def ready(request: Request) -> Response:
        if not _relay(request).ready:
            raise Unavailable("the relay has no data yet for every environment it holds")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(_relay(request).metrics.registry),
                        media_type="text/plain; version=0.0.4")

    @app.get("/sdk/flags")
    async def sdk_flags(request: Request, entry: ServerKey,
                        if_none_match: Annotated[str | None, Header()] = None) -> Response:
        relay = _relay(request)
        mirror, _feed = _held(relay, entry)
        _forward_report(relay, request)
        current = etag(mirror.version)
        if none_match(if_none_match, current):
            return Response(status_code=304, headers={"ETag": current})
        return Response(_dumps(mirror.raw()), media_type=_JSON, headers={"ETag": current})

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        relay = _relay(websocket)
        try:
            entry = await _key(relay, websocket.headers)
            _mirror, feed = _held(relay, entry)
            after_id = parse_last_event_id(websocket.query_params.get("last_event_id"),
                                           field="last_event_id")
        except FlagstaffError as error:
            await deny(websocket, error)
            return
        await serve_websocket(websocket, feed, environment=entry.environment,
                              after_id=after_id, credential=entry.token_id)

    @app.post("/evaluate")
    async def evaluate(request: Request, body: EvaluateIn, entry: SdkKey) -> dict[str, Any]:
        mirror, _feed = _held(_relay(request), entry, body.environment)
        context = _checked(request, entry, body.context)
        snapshot = mirror.compiled()
        assert snapshot is not None
        return evaluation.evaluate_one(snapshot, body, context, client=entry.kind == SDK_CLIENT)

    @app.post("/evaluate/all")
    async def evaluate_all(request: Request, body: EvaluateAllIn,
                           entry: SdkKey) -> dict[str, Any]:
        relay = _relay(request)
        mirror, _feed = _held(relay, entry, body.environment)
        context = _checked(request, entry, body.context)
        snapshot = mirror.compiled()
        assert snapshot is not None
        return evaluation.evaluate_all(
            CachedSnapshot(snapshot, mirror.version), relay.pages.view, entry.environment,
            context, client=entry.kind == SDK_CLIENT)

    @app.post("/ofrep/v1/evaluate/flags/{key}")
    async def ofrep_evaluate(request: Request, key: Annotated[str, Path(max_length=128)],
                             entry: SdkKey, context: Context,
                             environment: Annotated[str | None, Query()] = None) -> Response:
        mirror, _feed = _held(_relay(request), entry, environment)
        context = _checked(request, entry, context)
        snapshot = mirror.compiled()
        assert snapshot is not None
        status, body = evaluation.ofrep_single(snapshot, key, context,
                                               client=entry.kind == SDK_CLIENT)
        return Response(body, status_code=status, media_type=_JSON)

    @app.post("/ofrep/v1/evaluate/flags")
    async def ofrep_bulk(request: Request, entry: SdkKey, context: Context,
                         environment: Annotated[str | None, Query()] = None,
                         if_none_match: Annotated[str | None, Header()] = None) -> Response:
        relay = _relay(request)
        mirror, _feed = _held(relay, entry, environment)
        context = _checked(request, entry, context)
        snapshot = mirror.compiled()
        assert snapshot is not None
        # The answers come from this relay's memory, which already holds any change an event
        # stream announced, so flagConfigEtag / flagConfigLastModified need no catching up.
        raw, tag = evaluation.ofrep_bulk(
            snapshot, relay.pages.view, context, client=entry.kind == SDK_CLIENT,
            event_streams=relay.pages.event_streams(request.scope.get("root_path", ""), entry),
            installation="")
        if none_match(if_none_match, tag):
            return Response(status_code=304, headers={"ETag": tag})
        return Response(raw, media_type=_JSON, headers={"ETag": tag})

    @app.post("/relay/keys")
    async def relay_keys(request: Request, body: KeysIn, _entry: ServerKey) -> dict[str, Any]:
        for index, value in enumerate(body.hashes):
            if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
                raise Invalid("hashes[]: each must be 64 lowercase hex digits (SHA-256)",
                              details={"field": f"hashes[{index}]"})
        return {"keys": await _relay(request).keys.live(body.hashes)}

    @app.get("/relay/access")
    async def relay_access(request: Request, entry: ServerKey,
                           environment: Annotated[str | None, Query(max_length=128)] = None,
                           ) -> dict[str, Any]:
        if environment is not None and environment != entry.environment:
            raise Forbidden(f"this SDK key is bound to {entry.environment!r}, not "
                            f"{environment!r}", details={"field": "environment"})
        return _relay(request).access.answer(entry.environment)

    for path in INGEST_PATHS:
        app.add_api_route(path, _ingest, methods=["POST"], status_code=202)


async def _ingest(request: Request) -> Response:
    """Forward an ingestion request upstream with the caller's key (buffered if it is away)."""
    relay = _relay(request)
    path = request.url.path
    body = await request.body()
    entry = await _ingest_key(request, relay, path, body)
    origin = request.headers.get("origin")
    if origin is not None:
        # From a page: the server's origin rule here, since the upstream sees the relay.
        relay.pages.check_origin(entry, origin=origin, path=path)
    if path == "/fleet/reports":
        body = _via(body, relay.instance)
    headers = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
    try:
        answer = await relay.forwarder.forward(Pending(path, headers, body))
    except BufferFull:
        raise Unavailable("the upstream is away and the relay's buffer is full; retry later",
                          details={"retry_after": 5}) from None
    if answer is None:
        return JSONResponse({"buffered": True}, status_code=202)
    status, content, media = answer
    return Response(content, status_code=status, media_type=media)


async def _ingest_key(request: Request, relay: Relay, path: str, body: bytes) -> KeyEntry:
    """The caller's key, from the ``Authorization`` header or, on a beacon without one, a
    client-side key from the body, read as the server reads it.  A beacon is forwarded as it
    came, key in the body, so the upstream authenticates and checks it again."""
    if _bearer(request.headers) is not None or path not in beacons.BEACON_PATHS:
        return await _any_key(relay, request.headers)
    # The server's structural limits come before its authentication; a body they refuse
    # names no key.
    error, parsed = parse_checked_body(body, request.app.state.request_limits)
    if error is not None:
        raise error
    secret = beacons.body_key(None if parsed is NOT_PARSED else parsed)
    if secret is None:
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    entry = await relay.keys.lookup(secret)
    if entry is None:
        raise Unauthorized("unknown or revoked token")
    beacons.require_client_side(entry.kind)
    return entry


def _via(body: bytes, instance: str) -> bytes:
    """A fleet report body as this relay passes it on (``via`` = the nearest relay)."""
    try:
        reports = parse_reports(json.loads(body))
    except (ValueError, FlagstaffError):
        return body  # the upstream answers the malformed body itself
    return _dumps({"reports": [r.forwarded_by(instance).to_dict() for r in reports]})


def _forward_report(relay: Relay, request: Request) -> None:
    """A report piggy-backed on a poll goes upstream as a report, in the background (never
    delaying or failing the poll)."""
    report: Report | None = report_from_headers(request.headers)
    if report is None:
        return
    body = _dumps({"reports": [report.forwarded_by(relay.instance).to_dict()]})
    headers = {"authorization": request.headers["authorization"], "content-type": _JSON}
    relay.forwarder.enqueue(Pending("/fleet/reports", headers, body))
