"""Experiments (contract §9): configuration, status machine, results; and flag exposures.

Every write here is a flag write through the store (validated by the engine, audited,
streamed to SDKs).  Status changes follow draft→running⇄paused→completed; an illegal one is
409 ``invalid_transition`` naming ``from`` and ``to``.  Results combine the store's aggregates
with :mod:`flagstaff.stats` (``experiment_results``), including the SRM check.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from flagstaff.server.auth import Editor, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.etags import etag, parse_if_match
from flagstaff.server.experiment_results import experiment_results
from flagstaff.server.models import ExperimentIn, IsoDateTime
from flagstaff.server.routes.flags import IfMatch
from flagstaff.store import Store

router = APIRouter(tags=["experiments"])

StoreDep = Annotated[Store, Depends(get_store)]
FlagKey = Annotated[str, Path(max_length=128, description="the flag key")]
EnvQuery = Annotated[
    str | None,
    Query(max_length=128, description="the environment; may be left out when the flag has "
          "an experiment in exactly one environment"),
]
READ = error_responses(400, 401, 403, 404)
WRITE = error_responses(400, 401, 403, 404, 409, 412, 413)


def _view(response: Response, view: Any) -> dict[str, Any]:
    response.headers["ETag"] = etag(view.flag_version)
    return dict(view.to_dict())


@router.get("/experiments", summary="List experiments (every flag environment with one)",
            responses=READ)
def list_experiments(
    _: Viewer, store: StoreDep,
    status: Annotated[str | None, Query(pattern="^(draft|running|paused|completed)$")] = None,
) -> dict[str, Any]:
    return {"items": [v.to_dict() for v in store.list_experiments(status=status)]}


@router.get("/experiments/{key}", summary="Get a flag's experiment in one environment",
            responses=READ)
def get_experiment(
    key: FlagKey, response: Response, _: Viewer, store: StoreDep, environment: EnvQuery = None,
) -> dict[str, Any]:
    return _view(response, store.get_experiment(key=key, environment=environment))


@router.put("/experiments/{key}", summary="Set up (or replace a draft) experiment",
            responses=WRITE)
def put_experiment(
    key: FlagKey, body: ExperimentIn, response: Response, principal: Editor, store: StoreDep,
    environment: Annotated[str, Query(max_length=128)], if_match: IfMatch = None,
) -> dict[str, Any]:
    view = store.put_experiment(
        key=key, environment=environment, experiment=body.payload(), actor=principal.actor,
        if_match=parse_if_match(if_match),
    )
    return _view(response, view)


def _transition_route(action: str) -> Callable[..., dict[str, Any]]:
    def transition(
        key: FlagKey, response: Response, principal: Editor, store: StoreDep,
        environment: EnvQuery = None, if_match: IfMatch = None,
    ) -> dict[str, Any]:
        view = store.transition_experiment(
            key=key, environment=environment, action=action, actor=principal.actor,
            if_match=parse_if_match(if_match),
        )
        return _view(response, view)

    transition.__name__ = f"{action}_experiment"
    return transition


for _action, _summary in (
    ("start", "Start an experiment (draft → running)"),
    ("pause", "Pause an experiment (running → paused)"),
    ("resume", "Resume an experiment (paused → running)"),
    ("complete", "Complete an experiment (running or paused → completed)"),
):
    router.post(f"/experiments/{{key}}/{_action}", summary=_summary, responses=WRITE)(
        _transition_route(_action)
    )


@router.get(
    "/experiments/{key}/results",
    summary="Results per variant: lift, 95 % CIs, p-values (Holm), SRM (docs/statistics.md)",
    responses=READ,
)
def get_results(
    key: FlagKey, _: Viewer, store: StoreDep, environment: EnvQuery = None,
    sequential: Annotated[bool, Query(description="always-valid (mSPRT) p-values and intervals")] = False,
    run: Annotated[int | None, Query(ge=1, description="the run's number (default: the latest)")] = None,
) -> dict[str, Any]:
    return experiment_results(
        store, key=key, environment=environment, sequential=sequential, run=run
    )


@router.get(
    "/experiments/{key}/runs",
    summary="The experiment's runs: each start, its salt, configuration and time span",
    responses=READ,
)
def list_runs(
    key: FlagKey, _: Viewer, store: StoreDep, environment: EnvQuery = None,
) -> dict[str, Any]:
    view, runs = store.list_experiment_runs(key=key, environment=environment)
    return {"key": key, "environment": view.environment, "items": [r.to_dict() for r in runs]}


def _utc(moment: datetime | None) -> datetime | None:
    # A timestamp without an offset is read as UTC, like the ingested events.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get(
    "/flags/{key}/exposures",
    summary="Exposures per variant (evaluations, unique users) and a time series",
    responses=READ,
)
def flag_exposures(
    key: FlagKey, _: Viewer, store: StoreDep,
    environment: Annotated[str, Query(max_length=128)],
    since: Annotated[IsoDateTime | None, Query(description="ISO-8601, inclusive")] = None,
    until: Annotated[IsoDateTime | None, Query(description="ISO-8601, exclusive")] = None,
    bucket: Annotated[str, Query(pattern="^(hour|day)$")] = "day",
) -> dict[str, Any]:
    report = store.exposure_report(
        key=key, environment=environment, since=_utc(since), until=_utc(until), bucket=bucket
    )
    return report.to_dict()
