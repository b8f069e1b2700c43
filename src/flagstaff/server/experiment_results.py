"""Experiment results: the store's per-variant aggregates through :mod:`flagstaff.stats`.

Kept out of the route module so the handler stays one call.  The shape is the stats
``to_dict()`` (docs/statistics.md §7) plus the experiment's identity, ``exposed_users``,
``multiple_variant_users`` and ``srm``: the chi-square and share checks against the configured
variation weights.  A mismatch (p < 0.001) is logged at WARNING, since it means the
randomisation is broken and nothing else in the answer can be trusted.
"""

from __future__ import annotations

import logging
from typing import Any

from flagstaff.stats import (
    ConversionCounts,
    ExperimentResults,
    NumericMoments,
    conversion_results,
    numeric_results,
    srm_check,
)
from flagstaff.store import Store

log = logging.getLogger("flagstaff.server.experiments")


def experiment_results(
    store: Store, *, key: str, environment: str | None, sequential: bool
) -> dict[str, Any]:
    view, data = store.experiment_data(key=key, environment=environment)
    block = view.experiment
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
        **results.to_dict(),
        "srm": srm.to_dict(),
    }
