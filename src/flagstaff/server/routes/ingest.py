"""SDK → server event ingestion: ``POST /exposures``, ``/track``, ``/evaluation-counts``.

Either SDK key kind may send (browsers record exposures and conversions too); the events are
stored under the key's environment.  Every batch is idempotent by ``batch_id``: a retry is
answered 202 with ``"duplicate": true`` and counted once (contract §9).

``/exposures`` and ``/track`` are the high-volume routes (target ≥ 50,000 events/s over HTTP,
``benchmarks/bench_ingest.py``), so they do not let pydantic parse their bodies: a batch of
1,000 events cost more in FastAPI's body parsing and pydantic's model validation than in the
database.  The handler takes the body the request-limits middleware already decoded and
checked (``PARSED_BODY_KEY``; it decodes the raw body itself only when that is absent) and
hands the object to the store, whose validators check every event and name ``events[i].field`` on a
400.  The pydantic models still describe the bodies in the OpenAPI document
(``openapi_extra``).  ``/evaluation-counts`` carries a few hundred counts per minute and keeps
the ordinary pydantic body.

Pages (client-side keys) are held to their environment's origins, rate limits and secure mode
(:mod:`flagstaff.server.browser.ingestion`), and may send a beacon with the key in the body
(:mod:`flagstaff.browser.beacons`).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from flagstaff.browser import beacons
from flagstaff.errors import Forbidden, Invalid
from flagstaff.server.auth import (
    SDK_CLIENT,
    SDK_KINDS,
    Principal,
    authenticate,
    authenticate_secret,
    bearer,
    require_sdk,
)
from flagstaff.server.browser import ingestion
from flagstaff.server.browser.guard import access_policy, check_origin
from flagstaff.server.deps import get_settings, get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.fleet import ReportHeaders, note_report_headers
from flagstaff.server.limits import NOT_PARSED, PARSED_BODY_KEY
from flagstaff.server.models import EvaluationCountsIn, ExposuresIn, IngestOut, TrackIn
from flagstaff.store import Store

router = APIRouter(tags=["ingestion"])

SdkKey = Annotated[Principal, Depends(require_sdk(SDK_KINDS))]
StoreDep = Annotated[Store, Depends(get_store)]
ERRORS = error_responses(400, 401, 403, 413)


def _environment(principal: Principal) -> str:
    if principal.environment is None:
        raise Forbidden("this SDK key is not bound to an environment")
    return principal.environment


def _documented_body(model: type[ExposuresIn | TrackIn]) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body that the handler parses itself."""
    return {
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": model.model_json_schema()}}},
        # The key may also travel in the body (a page's beacon cannot set headers), which the
        # generated dependency tree cannot express.
        "x-flagstaff-auth": {"kinds": ["sdk-client", "sdk-server"], "role": None,
                             "credential": f"bearer-or-body:{beacons.BODY_KEY_FIELD}"},
    }


async def _raw_body(request: Request) -> tuple[str, bytes, Any]:
    """The body as bytes with its content type, and what the request-limits middleware
    decoded from it (:data:`NOT_PARSED` if nothing)."""
    parsed = request.scope.get(PARSED_BODY_KEY, NOT_PARSED)
    return request.headers.get("content-type", ""), await request.body(), parsed


RawBody = Annotated[tuple[str, bytes, Any], Depends(_raw_body)]


def _is_json(content_type: str) -> bool:
    # As FastAPI decides for model bodies: no content type, application/json or */*+json;
    # and text/plain, the only type a browser's sendBeacon can send without a preflight.
    media = content_type.split(";", 1)[0].strip().lower()
    return not media or media in ("application/json", "text/plain") or (
        media.startswith("application/") and media.endswith("+json")
    )


def decode_batch(raw: tuple[str, bytes, Any]) -> dict[str, Any]:
    """The JSON object of an ingestion body; 400 ``invalid``/``invalid_json`` otherwise."""
    content_type, body, data = raw
    if not _is_json(content_type):
        raise Invalid(
            "the request body must be JSON sent with Content-Type: application/json "
            f"(got {content_type.split(';')[0]!r})",
            details={"field": "Content-Type"},
        )
    if data is NOT_PARSED:  # not decoded upstream: empty, malformed or no middleware ran
        if not body.strip():
            raise Invalid("a JSON request body is required", details={"field": "body"})
        data = _decode(body)
    if data.__class__ is not dict:
        raise Invalid("body: must be a JSON object", details={"field": "body"})
    return data


def _decode(body: bytes) -> Any:
    try:
        # bytes, not str: json.loads detects UTF-8/16/32 as FastAPI's parsing did.
        return json.loads(body)
    except UnicodeDecodeError:
        raise Invalid("request body is not valid UTF-8 JSON", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise Invalid(
            f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            code="invalid_json", details={"line": exc.lineno, "column": exc.colno},
        ) from None
    except (ValueError, RecursionError) as exc:
        # The request-limits middleware answers these first; kept so that this route never
        # depends on it for a 400.
        raise Invalid(f"request body is not acceptable JSON: {exc}", code="invalid_json") from None


def _ingest_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    raw: RawBody,
) -> Principal:
    """The SDK key from the ``Authorization`` header, or a client-side key from a beacon's body."""
    body_key = beacons.body_key(raw[2])
    if credentials is not None or body_key is None:
        principal = authenticate(request, credentials)
    else:
        principal = authenticate_secret(request, body_key)
        beacons.require_client_side(principal.kind)
    if principal.kind not in SDK_KINDS:
        raise Forbidden("this route needs an SDK key of kind sdk-client or sdk-server")
    return principal


IngestKey = Annotated[Principal, Depends(_ingest_principal)]


def _note_report(request: Request, principal: IngestKey) -> None:
    # The fleet report in the headers, heard from the key however it came (a beacon's is in
    # its body, which the fleet's own dependency, reading the Authorization header, cannot see).
    note_report_headers(request, principal)


IngestReport = Annotated[None, Depends(_note_report)]


def _browser_checks(request: Request, principal: Principal, body: dict[str, Any]) -> str:
    """The key's environment, after the origin, rate, size and secure-mode checks for pages."""
    environment = _environment(principal)
    check_origin(request, principal, environment)
    if principal.kind != SDK_CLIENT:
        return environment
    settings = get_settings(request)
    client = request.client
    ingestion.check_rate(request.app.state.ingest_limiter, principal.token_id,
                         client.host if client else "unknown")
    ingestion.check_size(body, settings.browser_ingest_max_events)
    secret = access_policy(request).secure_mode_secret(environment)
    if secret is not None:
        ingestion.check_secure_mode(body, secret, environment)
    return environment


def _accepted(result: Any) -> JSONResponse:
    # A ready response: FastAPI would otherwise re-validate the dict against IngestOut.
    return JSONResponse(result.to_dict(), status_code=202)


@router.post(
    "/exposures", status_code=202, summary="Record a batch of exposures (idempotent by batch_id)",
    response_model=IngestOut, responses=ERRORS, openapi_extra=_documented_body(ExposuresIn),
)
def post_exposures(
    request: Request, raw: RawBody, principal: IngestKey, store: StoreDep,
    _report: IngestReport,
) -> JSONResponse:
    body = decode_batch(raw)
    return _accepted(store.ingest_exposures(
        environment=_browser_checks(request, principal, body), batch_id=body.get("batch_id"),
        events=body.get("events"),
    ))


@router.post(
    "/track", status_code=202, summary="Record metric events (idempotent by batch_id)",
    response_model=IngestOut, responses=ERRORS, openapi_extra=_documented_body(TrackIn),
)
def post_track(
    request: Request, raw: RawBody, principal: IngestKey, store: StoreDep,
    _report: IngestReport,
) -> JSONResponse:
    body = decode_batch(raw)
    return _accepted(store.ingest_metric_events(
        environment=_browser_checks(request, principal, body), batch_id=body.get("batch_id"),
        events=body.get("events"),
    ))


@router.post(
    "/evaluation-counts", status_code=202,
    summary="Record aggregated evaluation counts for flag lifecycle (idempotent by batch_id)",
    response_model=IngestOut, responses=ERRORS,
)
def post_evaluation_counts(
    body: EvaluationCountsIn, principal: SdkKey, store: StoreDep, _report: ReportHeaders
) -> dict[str, Any]:
    return store.ingest_evaluation_counts(
        environment=_environment(principal), batch_id=body.batch_id,
        window_start=body.window_start, window_end=body.window_end, counts=body.counts,
    ).to_dict()
