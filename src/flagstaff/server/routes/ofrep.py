"""The OpenFeature Remote Evaluation Protocol (OFREP v1), so any OFREP provider works.

Single flag: ``POST /ofrep/v1/evaluate/flags/{key}`` with ``{"context": {...}}`` answers 200
``{key, value, reason, variant, metadata}``, 404 ``{key, errorCode: FLAG_NOT_FOUND,
errorDetails}`` or 400 ``{key, errorCode, errorDetails}`` (``PARSE_ERROR``,
``TARGETING_KEY_MISSING``, ``INVALID_CONTEXT``, ``GENERAL``).  Bulk: ``POST
/ofrep/v1/evaluate/flags`` answers ``{"flags": [...]}`` with an ``ETag``; a request whose
``If-None-Match`` names the current tag gets 304.  Every failure, authentication included, is in
OFREP's shapes (``server/errors.py``).  Management tokens name the environment with
``?environment=``.

Client-side keys see only flags marked ``client_side`` (:mod:`flagstaff.browser.visibility`)
and answers without targeting details (:mod:`flagstaff.ofrep`); pages are held to their
environment's origins and secure mode (:mod:`~flagstaff.server.browser.guard`).

The bulk ETag is a hash of this database's random installation id and of the exact body: it
changes exactly when this context's answers change, so an edit in another environment, to a
server-only flag, or to rules this context does not reach costs a browser a 304, and two
databases (a reset install, a restored backup) never produce a tag the other could match.
``flagConfigEtag`` / ``flagConfigLastModified`` (ADR-0008, sent on a re-fetch an event stream
triggered) make the server catch up with the change log before it answers, so a replica that
has not yet seen the change cannot serve the old answer to the browser it woke.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Header, Path, Query, Request, Response

from flagstaff.browser.visibility import ClientView
from flagstaff.errors import Invalid
from flagstaff.numerals import ascii_int
from flagstaff.server import evaluation
from flagstaff.server.auth import SDK_CLIENT, EvaluatingPrincipal, Principal
from flagstaff.server.browser.eventstream import OfrepStreams
from flagstaff.server.browser.guard import check_origin, checked_context
from flagstaff.server.etags import none_match
from flagstaff.server.evaluation import JSON_TYPE, environment_for
from flagstaff.server.models import OfrepIn
from flagstaff.server.ofrep_context import Context
from flagstaff.server.routes.evaluate import in_memory, load_access_policy
from flagstaff.server.snapshots import CachedSnapshot, SnapshotCache

router = APIRouter(prefix="/ofrep/v1", tags=["ofrep"])

Environment = Annotated[
    str | None, Query(max_length=128, description="management tokens only: environment to use")
]
_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": OfrepIn.model_json_schema()}}}}
_SINGLE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Evaluated: `{key, value, reason, variant, metadata}`"},
    400: {"description": "`{key, errorCode, errorDetails}` (PARSE_ERROR, TARGETING_KEY_MISSING, "
                         "INVALID_CONTEXT, GENERAL)"},
    401: {"description": "`{errorDetails}`: missing, unknown or revoked key"},
    403: {"description": "`{errorDetails}`: origin not allowed, secure mode, wrong key"},
    404: {"description": "`{key, errorCode: FLAG_NOT_FOUND, errorDetails}`; `{errorDetails}` for "
                         "an `environment` that does not exist"},
}
_BULK: dict[int | str, dict[str, Any]] = {
    200: {"description": "`{flags: [...]}`, ETag"},
    304: {"description": "Not modified: this context's answers are those of the `If-None-Match` tag"},
    400: {"description": "`{errorCode, errorDetails}` (PARSE_ERROR, INVALID_CONTEXT, GENERAL)"},
    401: {"description": "`{errorDetails}`"},
    403: {"description": "`{errorDetails}`"},
    404: {"description": "`{errorDetails}`: the `environment` (management tokens) does not exist"},
}


async def _prepare(
    request: Request, principal: Principal, environment: str | None, context: dict[str, Any],
) -> tuple[str, dict[str, Any], bool]:
    env = environment_for(principal, environment)
    await load_access_policy(request)
    check_origin(request, principal, env)
    return env, checked_context(request, principal, env, context), principal.kind == SDK_CLIENT


@router.post(
    "/evaluate/flags/{key}", summary="OFREP: evaluate one flag", responses=_SINGLE,
    openapi_extra=_BODY,
)
async def ofrep_evaluate(
    request: Request,
    key: Annotated[str, Path(max_length=128)],
    principal: EvaluatingPrincipal,
    context: Context,
    environment: Environment = None,
) -> Response:
    env, context, client = await _prepare(request, principal, environment, context)
    cached = await in_memory(request, env)
    status, body = evaluation.ofrep_single(cached.snapshot, key, context, client=client,
                                           memo=cached.encoded)
    return Response(body, status_code=status, media_type=JSON_TYPE)


@router.post(
    "/evaluate/flags", summary="OFREP: evaluate all flags (ETag / If-None-Match -> 304)",
    responses=_BULK, openapi_extra=_BODY,
)
async def ofrep_bulk(
    request: Request,
    principal: EvaluatingPrincipal,
    context: Context,
    environment: Environment = None,
    if_none_match: Annotated[str | None, Header()] = None,
    flag_config_etag: Annotated[str | None, Query(
        alias="flagConfigEtag", max_length=256,
        description="ADR-0008: the `etag` of the event-stream message that triggered this re-fetch",
    )] = None,
    flag_config_last_modified: Annotated[str | None, Query(
        alias="flagConfigLastModified", max_length=64,
        description="ADR-0008: the `lastModified` (Unix seconds or ISO 8601) of that message",
    )] = None,
) -> Response:
    env, context, client = await _prepare(request, principal, environment, context)
    installation: str = request.app.state.installation_id
    if flag_config_etag is None and flag_config_last_modified is None:
        cached = await in_memory(request, env)
    else:
        snapshots: SnapshotCache = request.app.state.snapshots
        cached = await anyio.to_thread.run_sync(
            _fresh_enough, snapshots, env, installation, flag_config_etag,
            flag_config_last_modified)
    view: ClientView = request.app.state.client_view
    streams: OfrepStreams = request.app.state.ofrep_streams
    raw, tag = evaluation.ofrep_bulk(
        cached.snapshot, view, context, client=client, installation=installation,
        event_streams=streams.event_streams(request.scope.get("root_path", ""), principal),
        memo=cached.encoded)
    if none_match(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return Response(raw, media_type=JSON_TYPE, headers={"ETag": tag})


def _fresh_enough(
    snapshots: SnapshotCache, environment: str, installation: str, etag: str | None,
    last_modified: str | None,
) -> CachedSnapshot:
    """The snapshot to answer an event-triggered re-fetch from: at least as new as the change
    that triggered it (``flagConfigEtag`` names its event id), or as everything committed
    (``flagConfigLastModified`` alone).  A tag from another installation is ignored."""
    if last_modified is not None:
        _parse_last_modified(last_modified)
    target = change_id_of(etag, installation) if etag else None
    if target is not None:
        return snapshots.at_least(environment, target)
    if last_modified is not None:
        return snapshots.at_least(environment, None)
    return snapshots.get(environment)


def change_id_of(etag: str, installation: str) -> int | None:
    """The change-event id in an event-stream ``etag`` (``"<installation>-<id>"``) of this
    installation, else None."""
    text = etag.strip().removeprefix("W/").strip('"')
    prefix, _, number = text.rpartition("-")
    if prefix != installation[:12]:
        return None
    return ascii_int(number, max_digits=18)


def _parse_last_modified(value: str) -> None:
    if ascii_int(value, max_digits=12) is not None:
        return
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            f"flagConfigLastModified must be Unix seconds or an ISO 8601 date-time (got {value!r})",
            details={"field": "flagConfigLastModified"},
        ) from None
