"""The OpenFeature Remote Evaluation Protocol (OFREP v1), so any OFREP provider works.

Single flag: ``POST /ofrep/v1/evaluate/flags/{key}`` with ``{"context": {...}}`` answers 200
``{key, value, reason, variant, metadata}``, 404 ``{key, errorCode: FLAG_NOT_FOUND,
errorDetails}`` or 400 ``{key, errorCode, errorDetails}``.  Bulk: ``POST
/ofrep/v1/evaluate/flags`` answers ``{"flags": [...]}`` with an ETag covering the snapshot
version and the context, so a repeated ``If-None-Match`` gets 304.  Auth errors use the common
error shape.  Management tokens name the environment with ``?environment=``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from flagstaff.engine import ErrorCode as EngineErrorCode
from flagstaff.engine import EvaluationDetail, Reason
from flagstaff.server.auth import AnyPrincipal
from flagstaff.server.deps import get_snapshots
from flagstaff.server.errors import error_responses
from flagstaff.server.etags import none_match
from flagstaff.server.models import OfrepIn
from flagstaff.server.routes.evaluate import environment_for
from flagstaff.server.snapshots import SnapshotCache

router = APIRouter(prefix="/ofrep/v1", tags=["ofrep"])

Snapshots = Annotated[SnapshotCache, Depends(get_snapshots)]
Environment = Annotated[
    str | None, Query(max_length=128, description="management tokens only: environment to use")
]
_OFREP_ERRORS = {
    200: {"description": "Evaluated: `{key, value, reason, variant, metadata}`"},
    **error_responses(401, 403),
    400: {"description": "`{key, errorCode, errorDetails}` (e.g. PARSE_ERROR)"},
    404: {"description": "`{key, errorCode: FLAG_NOT_FOUND, errorDetails}`"},
}


def _success(key: str, detail: EvaluationDetail) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    # OFREP metadata values are limited to booleans, strings and numbers.
    if detail.version is not None:
        metadata["version"] = detail.version
    if detail.rule_id is not None:
        metadata["ruleId"] = detail.rule_id
    if detail.prerequisite_key is not None:
        metadata["prerequisiteKey"] = detail.prerequisite_key
    if detail.reason is Reason.PREREQUISITE_FAILED:
        # OpenFeature has no word for a failed prerequisite; keep ours next to its DISABLED.
        metadata["flagstaffReason"] = detail.reason.value
    if detail.in_experiment:
        metadata["inExperiment"] = True
    return {
        "key": key,
        "value": detail.value,
        "reason": detail.reason.openfeature,
        "variant": detail.variant,
        "metadata": metadata,
    }


def _failure(key: str, detail: EvaluationDetail) -> dict[str, Any]:
    code = detail.error_code or EngineErrorCode.GENERAL
    return {"key": key, "errorCode": code.openfeature, "errorDetails": detail.error_message or code.value}


@router.post(
    "/evaluate/flags/{key}", summary="OFREP: evaluate one flag", responses=_OFREP_ERRORS,
)
def ofrep_evaluate(
    key: Annotated[str, Path(max_length=128)],
    principal: AnyPrincipal,
    snapshots: Snapshots,
    body: OfrepIn | None = None,
    environment: Environment = None,
) -> JSONResponse:
    env = environment_for(principal, environment)
    detail = snapshots.get(env).snapshot.evaluate(key, body.context if body else {}, None)
    if detail.error_code is None:
        return JSONResponse(_success(key, detail))
    status = 404 if detail.error_code is EngineErrorCode.FLAG_NOT_FOUND else 400
    return JSONResponse(_failure(key, detail), status_code=status)


@router.post(
    "/evaluate/flags", summary="OFREP: evaluate all flags (ETag / If-None-Match -> 304)",
    responses={200: {"description": "`{flags: [...]}`"}, 304: {"description": "Not modified"},
               **error_responses(400, 401, 403)},
)
def ofrep_bulk(
    principal: AnyPrincipal,
    snapshots: Snapshots,
    body: OfrepIn | None = None,
    environment: Environment = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    env = environment_for(principal, environment)
    context = body.context if body else {}
    cached = snapshots.get(env)
    # The answer depends on the flags and on the context, so the tag covers both.
    digest = hashlib.sha256(
        json.dumps([env, cached.version, context], sort_keys=True, default=str).encode()
    ).hexdigest()[:32]
    tag = f'"{digest}"'
    if none_match(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    flags = [
        _success(key, detail) if detail.error_code is None else _failure(key, detail)
        for key, detail in cached.snapshot.evaluate_all(context).items()
    ]
    return JSONResponse({"flags": flags}, headers={"ETag": tag})
