"""Per-variant aggregates for experiment results, computed in SQL on both backends.

The unit is the exposed user (docs/statistics.md §1).  A user counts in a variant when they
have at least one exposure with ``in_experiment`` true for the flag; users seen in more than
one variant (the allocation changed while running) are left out of the analysis and counted
separately, because they cannot be attributed to one arm.  A metric event counts for a user
only at or after their first exposure.

* conversion: ``COUNT(*)`` users and ``SUM(converted)`` per variant;
* numeric: per-user sums of the metric (0 for exposed users with no event), then
  ``COUNT``, ``SUM`` and ``SUM`` of squares per variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from flagstaff.store.experiment_runs import RunRecord
from flagstaff.store.schema import exposures, metric_events


@dataclass(frozen=True, slots=True)
class VariantAggregate:
    variant: str
    users: int
    conversions: int  # users with >= 1 metric event after exposure (conversion metrics)
    total: float  # sum over users of their metric sums (numeric metrics)
    sum_squares: float


@dataclass(frozen=True, slots=True)
class ExperimentData:
    variants: dict[str, VariantAggregate]
    multiple_variant_users: int


def _in_run(run: RunRecord | None) -> list[sa.ColumnElement[bool]]:
    """An exposure of ``run``: in its time span, and under one of its flag versions when the
    SDK reported the version (the versions from the start on carry the run's salt)."""
    if run is None:
        return []
    e = exposures.c
    out = [e.ts_ms >= run.started_ms, sa.or_(e.flag_version.is_(None), e.flag_version >= run.start_version)]
    if run.ended_ms is not None:
        out.append(e.ts_ms < run.ended_ms)
    if run.end_version is not None:
        out.append(sa.or_(e.flag_version.is_(None), e.flag_version < run.end_version))
    return out


def _first_exposures(environment: str, flag_key: str, run: RunRecord | None) -> sa.Subquery:
    e = exposures.c
    return (
        sa.select(
            e.user_key.label("user_key"),
            sa.func.min(e.variant).label("variant"),
            sa.func.min(e.ts_ms).label("first_ms"),
            sa.func.count(sa.distinct(e.variant)).label("variants"),
        )
        .where(
            e.environment == environment, e.flag_key == flag_key, e.in_experiment.is_(True),
            *_in_run(run),
        )
        .group_by(e.user_key)
        .subquery("first_exposure")
    )


def aggregate(
    conn: sa.Connection,
    *,
    environment: str,
    flag_key: str,
    metric: str,
    numeric: bool,
    run: RunRecord | None = None,
) -> ExperimentData:
    """Per-variant aggregates of one run (``None``: every exposure, for an experiment that was
    never started or started before runs were recorded)."""
    first = _first_exposures(environment, flag_key, run)
    clean = sa.select(first).where(first.c.variants == 1).subquery("exposed")
    m = metric_events.c
    joined = sa.and_(
        m.environment == environment,
        m.metric == metric,
        m.user_key == clean.c.user_key,
        m.ts_ms >= clean.c.first_ms,
        *([m.ts_ms < run.ended_ms] if run is not None and run.ended_ms is not None else []),
    )
    if numeric:
        per_user = (
            sa.select(
                clean.c.variant.label("variant"),
                sa.func.coalesce(sa.func.sum(m.value), 0.0).label("value"),
            )
            .select_from(clean.outerjoin(metric_events, joined))
            .group_by(clean.c.user_key, clean.c.variant)
            .subquery("per_user")
        )
        rows = conn.execute(
            sa.select(
                per_user.c.variant,
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(per_user.c.value), 0.0),
                sa.func.coalesce(sa.func.sum(per_user.c.value * per_user.c.value), 0.0),
            ).group_by(per_user.c.variant)
        ).all()
        found = {
            v: VariantAggregate(v, int(n), 0, float(total), float(squares))
            for v, n, total, squares in rows
        }
    else:
        converted = sa.case((sa.exists().where(joined), 1), else_=0)
        rows = conn.execute(
            sa.select(clean.c.variant, sa.func.count(), sa.func.coalesce(sa.func.sum(converted), 0))
            .group_by(clean.c.variant)
        ).all()
        found = {v: VariantAggregate(v, int(n), int(c), 0.0, 0.0) for v, n, c in rows}
    mixed = conn.execute(
        sa.select(sa.func.count()).select_from(first).where(first.c.variants > 1)
    ).scalar_one()
    return ExperimentData(variants=found, multiple_variant_users=int(mixed))
