"""Experiment results: the store's per-variant aggregates through :mod:`flagstaff.stats`.

Kept out of the route module so the handler stays one call.  The shape is the stats
``to_dict()`` (docs/statistics.md §7) plus the experiment's identity, ``exposed_users``,
``multiple_variant_users`` (left out of the analysis), ``run`` (the run analysed: by default the
latest; null for an experiment never started) and ``srm``: the chi-square and share checks against the configured
variation weights.  A mismatch (p < 0.001) is logged at WARNING, since it means the
randomisation is broken and nothing else in the answer can be trusted.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flagstaff.store import Store

if TYPE_CHECKING:
    from flagstaff.stats import ExperimentResults

log = logging.getLogger("flagstaff.server.experiments")


def _run_status(view: Any, run: Any) -> Any:
    # An ended run is completed; the open one has the experiment's status.
    return "completed" if run.ended_ms is not None else view.experiment.get("status")


def experiment_results(
    store: Store, *, key: str, environment: str | None, sequential: bool, run: int | None = None
) -> dict[str, Any]:
    # SciPy takes a second or more to import: it is loaded by the first results request, not
    # by every server (and worker) start.
    from flagstaff.stats import (
        ConversionCounts,
        NumericMoments,
        conversion_results,
        numeric_results,
        srm_check,
    )

    view, chosen, data = store.experiment_data(key=key, environment=environment, run=run)
    # A run is analysed with the configuration it ran with (the block may be a new draft now).
    block = view.experiment if chosen is None else {**chosen.config, "status": _run_status(view, chosen)}
    weights = {v["variant"]: float(v["weight"]) for v in block["variations"]}
    control = str(block["control"])
    names = [control, *(v for v in weights if v != control)]
    aggregates = data.variants
    results: ExperimentResults
    if block.get("metric_kind") == "numeric":
        moments = [
            NumericMoments(
                variant=name,
                users=aggregates[name].users if name in aggregates else 0,
                total=aggregates[name].total if name in aggregates else 0.0,
                sum_squares=aggregates[name].sum_squares if name in aggregates else 0.0,
            )
            for name in names
        ]
        results = numeric_results(moments[0], moments[1:], sequential=sequential)
    else:
        counts = [
            ConversionCounts(
                variant=name,
                users=aggregates[name].users if name in aggregates else 0,
                conversions=aggregates[name].conversions if name in aggregates else 0,
            )
            for name in names
        ]
        results = conversion_results(counts[0], counts[1:], sequential=sequential)
    observed = {name: agg.users for name, agg in aggregates.items()}
    srm = srm_check(observed, weights)
    if srm.mismatch:
        log.warning(
            "sample ratio mismatch in experiment %s (%s): p=%.3g, observed %s, weights %s",
            key, view.environment, srm.p_value, observed, weights,
        )
    return {
        "key": key,
        "environment": view.environment,
        "status": block.get("status"),
        "primary_metric": block["primary_metric"],
        "allocation": block.get("allocation"),
        "exposed_users": sum(observed.values()),
        "multiple_variant_users": data.multiple_variant_users,
        "run": None if chosen is None else chosen.to_dict(),
        **results.to_dict(),
        "srm": srm.to_dict(),
    }
