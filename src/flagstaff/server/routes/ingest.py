"""SDK → server event ingestion: ``POST /exposures``, ``/track``, ``/evaluation-counts``.

Either SDK key kind may send (browsers record exposures and conversions too); the events are
stored under the key's environment.  Every batch is idempotent by ``batch_id``: a retry is
answered 202 with ``"duplicate": true`` and counted once (contract §9).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from flagstaff.errors import Forbidden
from flagstaff.server.auth import SDK_KINDS, Principal, require_sdk
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
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


@router.post(
    "/exposures", status_code=202, summary="Record a batch of exposures (idempotent by batch_id)",
    response_model=IngestOut, responses=ERRORS,
)
def post_exposures(body: ExposuresIn, principal: SdkKey, store: StoreDep) -> dict[str, Any]:
    return store.ingest_exposures(
        environment=_environment(principal), batch_id=body.batch_id, events=body.events
    ).to_dict()


@router.post(
    "/track", status_code=202, summary="Record metric events (idempotent by batch_id)",
    response_model=IngestOut, responses=ERRORS,
)
def post_track(body: TrackIn, principal: SdkKey, store: StoreDep) -> dict[str, Any]:
    return store.ingest_metric_events(
        environment=_environment(principal), batch_id=body.batch_id, events=body.events
    ).to_dict()


@router.post(
    "/evaluation-counts", status_code=202,
    summary="Record aggregated evaluation counts for flag lifecycle (idempotent by batch_id)",
    response_model=IngestOut, responses=ERRORS,
)
def post_evaluation_counts(
    body: EvaluationCountsIn, principal: SdkKey, store: StoreDep
) -> dict[str, Any]:
    return store.ingest_evaluation_counts(
        environment=_environment(principal), batch_id=body.batch_id,
        window_start=body.window_start, window_end=body.window_end, counts=body.counts,
    ).to_dict()
