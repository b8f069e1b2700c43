"""Experiment runs: every start of a flag environment's experiment, with the configuration and
salt it ran with and the span it covers.

An experiment block in a flag can be completed and set up again (a new salt, new variations);
the exposures of both live in the same table.  A run scopes them: an exposure belongs to a run
when it was recorded in the run's time span and (when the SDK said which) under a flag version
written from the run's start on, before its end, which are the versions carrying the run's salt.
Results, the SRM check and exposure counts are computed per run; earlier runs stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.errors import NotFound
from flagstaff.store.db import now
from flagstaff.store.schema import experiment_runs


@dataclass(frozen=True, slots=True)
class RunRecord:
    number: int
    salt: str
    config: dict[str, Any]
    started_at: datetime
    started_ms: int
    start_version: int
    ended_at: datetime | None
    ended_ms: int | None
    end_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "salt": self.salt,
            "started_at": self.started_at.isoformat().replace("+00:00", "Z"),
            "ended_at": None if self.ended_at is None else self.ended_at.isoformat().replace("+00:00", "Z"),
            "start_version": self.start_version,
            "end_version": self.end_version,
            "variations": self.config.get("variations"),
            "control": self.config.get("control"),
            "primary_metric": self.config.get("primary_metric"),
            "metric_kind": self.config.get("metric_kind"),
            "allocation": self.config.get("allocation"),
        }


def _record(row: sa.Row[Any]) -> RunRecord:
    return RunRecord(
        number=int(row.number), salt=row.salt, config=dict(row.config),
        started_at=row.started_at, started_ms=int(row.started_ms),
        start_version=int(row.start_version), ended_at=row.ended_at,
        ended_ms=None if row.ended_ms is None else int(row.ended_ms),
        end_version=None if row.end_version is None else int(row.end_version),
    )


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _where(environment: str, flag_key: str) -> sa.ColumnElement[bool]:
    c = experiment_runs.c
    return sa.and_(c.environment == environment, c.flag_key == flag_key)


def begin(
    conn: sa.Connection, *, environment: str, flag_key: str, config: dict[str, Any], version: int
) -> RunRecord:
    """Record a start; the run's number is one more than the flag environment's last."""
    last = conn.execute(
        sa.select(sa.func.max(experiment_runs.c.number)).where(_where(environment, flag_key))
    ).scalar_one()
    at = now()
    conn.execute(
        experiment_runs.insert().values(
            environment=environment, flag_key=flag_key, number=int(last or 0) + 1,
            salt=str(config["salt"]), config=config, started_at=at, started_ms=_ms(at),
            start_version=version,
        )
    )
    run = latest(conn, environment=environment, flag_key=flag_key)
    assert run is not None
    return run


def end(conn: sa.Connection, *, environment: str, flag_key: str, version: int) -> None:
    """Close the open run (at completion)."""
    at = now()
    c = experiment_runs.c
    conn.execute(
        experiment_runs.update()
        .where(_where(environment, flag_key), c.ended_ms.is_(None))
        .values(ended_at=at, ended_ms=_ms(at), end_version=version)
    )


def list_runs(conn: sa.Connection, *, environment: str, flag_key: str) -> list[RunRecord]:
    rows = conn.execute(
        sa.select(experiment_runs)
        .where(_where(environment, flag_key))
        .order_by(experiment_runs.c.number)
    )
    return [_record(r) for r in rows]


def latest(conn: sa.Connection, *, environment: str, flag_key: str) -> RunRecord | None:
    runs = list_runs(conn, environment=environment, flag_key=flag_key)
    return runs[-1] if runs else None


def get(conn: sa.Connection, *, environment: str, flag_key: str, number: int) -> RunRecord:
    for run in list_runs(conn, environment=environment, flag_key=flag_key):
        if run.number == number:
            return run
    raise NotFound(
        f"the experiment of '{flag_key}' in '{environment}' has no run {number}",
        details={"key": flag_key, "environment": environment, "run": number},
    )
