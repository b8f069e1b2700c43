"""Remote evaluation for clients that cannot run the engine: ``/evaluate`` and ``/evaluate/all``.

Both SDK key kinds may call these (a client-side key only ever sees evaluated values, never
definitions); the environment is the key's.  Management tokens must name the environment.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from flagstaff.engine import EvaluationDetail
from flagstaff.errors import Forbidden, Invalid
from flagstaff.server.auth import AnyPrincipal, Principal
from flagstaff.server.deps import get_snapshots
from flagstaff.server.errors import error_responses
from flagstaff.server.models import EvaluateAllIn, EvaluateIn, EvaluationOut, EvaluationsOut
from flagstaff.server.snapshots import SnapshotCache

router = APIRouter(tags=["evaluation"])

Snapshots = Annotated[SnapshotCache, Depends(get_snapshots)]
ERRORS = error_responses(400, 401, 403, 404, 413)


def environment_for(principal: Principal, requested: str | None, *, field: str = "environment") -> str:
    """The environment a principal evaluates in: an SDK key's own, or the one a management
    token names explicitly."""
    if principal.is_management:
        if not requested:
            raise Invalid(
                "management tokens must name the environment to evaluate in",
                details={"field": field},
            )
        return requested
    if principal.environment is None:
        raise Forbidden("this token is not bound to an environment")
    if requested and requested != principal.environment:
        raise Forbidden(
            f"this SDK key is bound to {principal.environment!r}, not {requested!r}",
            details={"field": field},
        )
    return principal.environment


def detail_json(key: str, detail: EvaluationDetail) -> dict[str, Any]:
    return {
        "key": key,
        "value": detail.value,
        "variant": detail.variant,
        "reason": detail.reason.value,
        "rule_id": detail.rule_id,
        "rule_index": detail.rule_index,
        "prerequisite_key": detail.prerequisite_key,
        "error_code": detail.error_code.value if detail.error_code else None,
        "error_message": detail.error_message,
        "version": detail.version,
        "in_experiment": detail.in_experiment,
    }


@router.post(
    "/evaluate", summary="Evaluate one flag for a context",
    response_model=EvaluationOut, responses=ERRORS,
)
def evaluate(body: EvaluateIn, principal: AnyPrincipal, snapshots: Snapshots) -> dict[str, Any]:
    environment = environment_for(principal, body.environment)
    snapshot = snapshots.get(environment).snapshot
    return detail_json(body.flag, snapshot.evaluate(body.flag, body.context, body.default))


@router.post(
    "/evaluate/all", summary="Evaluate every active flag for a context",
    response_model=EvaluationsOut, responses=ERRORS,
)
def evaluate_all(body: EvaluateAllIn, principal: AnyPrincipal, snapshots: Snapshots) -> dict[str, Any]:
    environment = environment_for(principal, body.environment)
    cached = snapshots.get(environment)
    details = cached.snapshot.evaluate_all(body.context)
    return {
        "environment": environment,
        "version": cached.version,
        "flags": {key: detail_json(key, detail) for key, detail in details.items()},
    }
