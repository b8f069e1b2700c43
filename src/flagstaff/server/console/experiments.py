"""The console's exposures and experiment-results page for one flag in one environment.

Reads the same data as ``GET /flags/{key}/exposures`` and ``GET /experiments/{key}/results``
(the store's exposure report and the results computation) and draws both as inline SVG.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from flagstaff.errors import FlagstaffError
from flagstaff.server.console import charts
from flagstaff.server.console.rendering import render
from flagstaff.server.console.session import ConsoleRoute, current
from flagstaff.server.deps import get_store
from flagstaff.server.experiment_results import experiment_results
from flagstaff.store import Store

router = APIRouter(route_class=ConsoleRoute)


@router.get("/flags/{key}/experiment")
def experiment_page(
    request: Request, key: str, store: Annotated[Store, Depends(get_store)],
    env: Annotated[str | None, Query(max_length=128)] = None,
    bucket: Annotated[str, Query(pattern="^(hour|day)$")] = "day",
) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    envs = [e.key for e in store.list_environments()]
    selected = env if env in envs else ("production" if "production" in envs else envs[0])
    report = store.exposure_report(
        key=key, environment=selected, since=None, until=None, bucket=bucket
    ).to_dict()
    results: dict[str, Any] | None = None
    results_error: str | None = None
    try:
        results = experiment_results(store, key=key, environment=selected, sequential=False)
    except FlagstaffError as exc:
        results_error = exc.message
    return render(request, "experiment.html", {
        "flag": flag, "environments": envs, "env": selected, "bucket": bucket,
        "report": report, "exposures": charts.exposure_chart(report),
        "results": results, "results_error": results_error,
        "ci": charts.ci_chart(list(results["comparisons"])) if results else None,
    })
