"""Remote evaluation for clients that cannot run the engine: ``/evaluate`` and ``/evaluate/all``.

Both SDK key kinds may call these; the environment is the key's.  Management tokens must name
the environment.  A client-side key only ever sees evaluated values of flags marked
``client_side``, without rule ids or prerequisite keys, and is held to its environment's
origins and secure mode (``server/browser``), as on the OFREP routes.

These routes serve from memory (:func:`in_memory`): the key from the change-fed token cache,
the compiled snapshot from the change-fed snapshot cache, on the event loop with no worker
thread; only a miss (a key not seen for a minute, a snapshot behind a change) goes to the
database, in a thread.  A clean request is usually answered before it reaches them, by the
fast path (``server/fast_evaluation.py``), with the same functions
(``server/evaluation.py``).
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from flagstaff.browser.visibility import ClientView
from flagstaff.server import evaluation
from flagstaff.server.auth import SDK_CLIENT, EvaluatingPrincipal
from flagstaff.server.browser.access import AccessPolicy
from flagstaff.server.browser.guard import check_origin, checked_context
from flagstaff.server.errors import error_responses
from flagstaff.server.evaluation import environment_for
from flagstaff.server.models import EvaluateAllIn, EvaluateIn, EvaluationOut, EvaluationsOut
from flagstaff.server.snapshots import CachedSnapshot, SnapshotCache

router = APIRouter(tags=["evaluation"])

ERRORS = error_responses(400, 401, 403, 404, 413)


async def load_access_policy(request: Request) -> None:
    """Make the browser access policy answerable from memory (origins, secure mode), reading
    it in a worker thread when it is due for a reload."""
    policy: AccessPolicy = request.app.state.access_policy
    if not policy.fresh():
        await anyio.to_thread.run_sync(policy.origin_known, "")


async def in_memory(request: Request, environment: str) -> CachedSnapshot:
    """The current snapshot of ``environment``: from memory when it is known to be current,
    else read in a worker thread."""
    snapshots: SnapshotCache = request.app.state.snapshots
    cached = snapshots.current(environment)
    if cached is None:
        cached = await anyio.to_thread.run_sync(snapshots.get, environment)
    return cached


@router.post(
    "/evaluate", summary="Evaluate one flag for a context",
    response_model=EvaluationOut, responses=ERRORS,
)
async def evaluate(
    request: Request, body: EvaluateIn, principal: EvaluatingPrincipal,
) -> dict[str, Any]:
    environment = environment_for(principal, body.environment)
    await load_access_policy(request)
    check_origin(request, principal, environment)
    context = checked_context(request, principal, environment, body.context)
    cached = await in_memory(request, environment)
    return evaluation.evaluate_one(cached.snapshot, body, context, client=principal.kind == SDK_CLIENT)


@router.post(
    "/evaluate/all", summary="Evaluate every active flag for a context",
    response_model=EvaluationsOut, responses=ERRORS,
)
async def evaluate_all(
    request: Request, body: EvaluateAllIn, principal: EvaluatingPrincipal,
) -> dict[str, Any]:
    environment = environment_for(principal, body.environment)
    await load_access_policy(request)
    check_origin(request, principal, environment)
    context = checked_context(request, principal, environment, body.context)
    cached = await in_memory(request, environment)
    view: ClientView = request.app.state.client_view
    return evaluation.evaluate_all(cached, view, environment, context, client=principal.kind == SDK_CLIENT)
