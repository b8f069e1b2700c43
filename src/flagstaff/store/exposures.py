"""Exposure reads: per-variant totals and an hour/day time series for one flag (contract §9).

Timestamps are epoch milliseconds, so a bucket is ``ts_ms / width * width`` in integer
arithmetic, identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import Invalid
from flagstaff.store.records import iso
from flagstaff.store.schema import exposures

BUCKETS = {"hour": 3_600_000, "day": 86_400_000}
# A time series longer than this is almost certainly a mistaken range; refuse it early.
MAX_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class VariantExposures:
    variant: str
    evaluations: int
    unique_users: int


@dataclass(frozen=True, slots=True)
class ExposurePoint:
    start: datetime
    variant: str
    evaluations: int
    unique_users: int


@dataclass(frozen=True, slots=True)
class ExposureReport:
    flag_key: str
    environment: str
    since: datetime | None
    until: datetime | None
    bucket: str
    variants: tuple[VariantExposures, ...]
    series: tuple[ExposurePoint, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flag_key": self.flag_key,
            "environment": self.environment,
            "since": None if self.since is None else iso(self.since),
            "until": None if self.until is None else iso(self.until),
            "bucket": self.bucket,
            "total": {
                "evaluations": sum(v.evaluations for v in self.variants),
            },
            "variants": [
                {"variant": v.variant, "evaluations": v.evaluations, "unique_users": v.unique_users}
                for v in self.variants
            ],
            "series": [
                {"start": iso(p.start), "variant": p.variant, "evaluations": p.evaluations,
                 "unique_users": p.unique_users}
                for p in self.series
            ],
        }


def to_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise Invalid("timestamps need a UTC offset", details={"field": "since"})
    return int(moment.timestamp() * 1000)


def _filters(
    *, environment: str, flag_key: str, since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    where = [exposures.c.environment == environment, exposures.c.flag_key == flag_key]
    if since is not None:
        where.append(exposures.c.ts_ms >= to_ms(since))
    if until is not None:
        where.append(exposures.c.ts_ms < to_ms(until))
    return where


def report(
    conn: sa.Connection,
    *,
    environment: str,
    flag_key: str,
    since: datetime | None,
    until: datetime | None,
    bucket: str,
) -> ExposureReport:
    """Totals per variant in ``[since, until)`` and the same per ``bucket`` (hour or day)."""
    if bucket not in BUCKETS:
        raise Invalid("bucket must be hour or day", details={"field": "bucket"})
    if since is not None and until is not None and until <= since:
        raise Invalid("until must be after since", details={"field": "until"})
    width = BUCKETS[bucket]
    if since is not None and until is not None and (to_ms(until) - to_ms(since)) / width > MAX_POINTS:
        raise Invalid(
            f"the range holds more than {MAX_POINTS} {bucket}s; use a wider bucket",
            details={"field": "bucket"},
        )
    where = _filters(environment=environment, flag_key=flag_key, since=since, until=until)
    users = sa.func.count(sa.distinct(exposures.c.user_key))
    totals = conn.execute(
        sa.select(exposures.c.variant, sa.func.count(), users)
        .where(*where)
        .group_by(exposures.c.variant)
        .order_by(exposures.c.variant)
    ).all()
    # ``//`` is integer division on both backends (``/`` would be true division in SQLAlchemy 2).
    start = (exposures.c.ts_ms // width * width).label("bucket_start")
    points = conn.execute(
        sa.select(start, exposures.c.variant, sa.func.count(), users)
        .where(*where)
        .group_by(start, exposures.c.variant)
        .order_by(start, exposures.c.variant)
    ).all()
    return ExposureReport(
        flag_key=flag_key,
        environment=environment,
        since=since,
        until=until,
        bucket=bucket,
        variants=tuple(VariantExposures(v, int(n), int(u)) for v, n, u in totals),
        series=tuple(
            ExposurePoint(datetime.fromtimestamp(int(s) / 1000, UTC), v, int(n), int(u))
            for s, v, n, u in points
        ),
    )
