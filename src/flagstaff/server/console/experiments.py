"""The console's exposures and experiment-results page for one flag in one environment.

Reads the same data as ``GET /flags/{key}/exposures`` and ``GET /experiments/{key}/results``
(the store's exposure report and the results computation) and draws both as inline SVG.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from flagstaff.errors import FlagstaffError
from flagstaff.server.console import charts, views
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
    run: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    envs = views.environment_keys(request, store)
    selected = env if env in envs else ("production" if "production" in envs else envs[0])
    report = store.exposure_report(
        key=key, environment=selected, since=None, until=None, bucket=bucket
    ).to_dict()
    results: dict[str, Any] | None = None
    results_error: str | None = None
    runs: list[dict[str, Any]] = []
    try:
        results = experiment_results(
            store, key=key, environment=selected, sequential=False, run=run
        )
        runs = [r.to_dict() for r in store.list_experiment_runs(key=key, environment=selected)[1]]
    except FlagstaffError as exc:
        results_error = exc.message
    config = (flag.get("environments") or {}).get(selected) or {}
    status = (config.get("experiment") or {}).get("status")
    # Killed (or turned off) after the start: the experiment says running, nobody is assigned.
    flag_off = status in ("running", "paused") and not config.get("enabled")
    return render(request, "experiment.html", {
        "flag_off": flag_off, "experiment_status": status,
        "flag": flag, "environments": envs, "env": selected, "bucket": bucket,
        "report": report, "exposures": charts.exposure_chart(report),
        "results": results, "results_error": results_error, "runs": runs,
        "ci": charts.ci_chart(list(results["comparisons"])) if results else None,
    })
