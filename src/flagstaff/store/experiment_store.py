"""The ``Store`` methods for ingestion, exposure reads, experiments, lifecycle.

A mixin of :class:`flagstaff.store.Store`, kept apart so that the facade stays readable; like
the rest of the facade each method is one transaction with keyword-only arguments.
Ingestion transactions skip the PostgreSQL writer lock (``serialise=False``): they write no
audit record or change event, and concurrent batches only need the batch-id primary key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.store import environments, experiment_runs, exposures, flag_writes, ingest, lifecycle
from flagstaff.store import experiment_data as data
from flagstaff.store import experiments as experiment_repo
from flagstaff.store.db import now, read_tx, write_tx
from flagstaff.store.ingest import IngestResult


class ExperimentStoreMixin:
    engine: sa.Engine

    # -- ingestion -------------------------------------------------------------------------

    def _ingest(
        self,
        *,
        kind: str,
        batch_id: Any,
        environment: str,
        rows: list[Any],
        insert: Any,
    ) -> IngestResult:
        checked = ingest.check_batch_id(batch_id)
        with write_tx(self.engine, serialise=False) as conn:
            if not ingest.claim_batch(
                conn, batch_id=checked, kind=kind, environment=environment, at=now()
            ):
                return IngestResult(accepted=0, duplicate=True)
            insert(conn, rows=rows)
        return IngestResult(accepted=len(rows), duplicate=False)

    def ingest_exposures(self, *, environment: str, batch_id: Any, events: Any) -> IngestResult:
        """Store a batch of exposures once; a batch id seen before stores nothing."""
        rows = ingest.exposure_rows(events, environment=environment)
        return self._ingest(
            kind="exposures", batch_id=batch_id, environment=environment, rows=rows,
            insert=ingest.insert_exposures,
        )

    def ingest_metric_events(
        self, *, environment: str, batch_id: Any, events: Any
    ) -> IngestResult:
        rows = ingest.metric_rows(events, environment=environment)
        return self._ingest(
            kind="track", batch_id=batch_id, environment=environment, rows=rows,
            insert=ingest.insert_metric_events,
        )

    def ingest_evaluation_counts(
        self, *, environment: str, batch_id: Any, window_start: Any, window_end: Any, counts: Any
    ) -> IngestResult:
        rows = ingest.count_rows(
            counts, environment=environment, window_start=window_start, window_end=window_end
        )
        result = self._ingest(
            kind="counts", batch_id=batch_id, environment=environment, rows=rows,
            insert=ingest.add_counts,
        )
        if result.duplicate:
            return result
        return IngestResult(accepted=len(counts), duplicate=False)

    # -- reads -----------------------------------------------------------------------------

    def exposure_report(
        self,
        *,
        key: str,
        environment: str,
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: str = "day",
    ) -> exposures.ExposureReport:
        with read_tx(self.engine, consistent=True) as conn:
            flag_writes.get_or_404(conn, key=key)
            return exposures.report(
                conn, environment=environment, flag_key=key, since=since, until=until,
                bucket=bucket,
            )

    def experiment_data(
        self, *, key: str, environment: str | None, run: int | None = None
    ) -> tuple[
        experiment_repo.ExperimentView, experiment_runs.RunRecord | None, data.ExperimentData
    ]:
        """The experiment, the run asked for (default: the latest) and that run's per-variant
        aggregates, read from one snapshot.  A run is analysed with the configuration it ran
        with, whatever the experiment block says now."""
        with read_tx(self.engine, consistent=True) as conn:
            view = experiment_repo.get(conn, key=key, environment=environment)
            if run is None:
                chosen = experiment_runs.latest(conn, environment=view.environment, flag_key=key)
            else:
                chosen = experiment_runs.get(
                    conn, environment=view.environment, flag_key=key, number=run
                )
            block = view.experiment if chosen is None else chosen.config
            aggregates = data.aggregate(
                conn,
                environment=view.environment,
                flag_key=key,
                metric=str(block["primary_metric"]),
                numeric=block.get("metric_kind") == "numeric",
                run=chosen,
            )
        return view, chosen, aggregates

    def list_experiment_runs(
        self, *, key: str, environment: str | None
    ) -> tuple[experiment_repo.ExperimentView, list[experiment_runs.RunRecord]]:
        with read_tx(self.engine) as conn:
            view = experiment_repo.get(conn, key=key, environment=environment)
            return view, experiment_runs.list_runs(
                conn, environment=view.environment, flag_key=key
            )

    def stale_flags(
        self, *, now: datetime, thresholds: Mapping[str, int | None] | None = None
    ) -> list[lifecycle.StaleFlag]:
        with read_tx(self.engine, consistent=True) as conn:
            return lifecycle.stale_flags(
                conn, now=now, thresholds=thresholds or lifecycle.DEFAULT_THRESHOLDS
            )

    def flag_usage(self, *, key: str, now: datetime, days: int = 7) -> lifecycle.FlagUsage:
        """A flag's evaluation counts per environment and variant over the last ``days``."""
        with read_tx(self.engine) as conn:
            return lifecycle.flag_usage(conn, flag_key=key, now=now, days=days)

    # -- experiments -----------------------------------------------------------------------

    def list_experiments(self, *, status: str | None = None) -> list[experiment_repo.ExperimentView]:
        with read_tx(self.engine) as conn:
            return experiment_repo.list_all(conn, status=status)

    def get_experiment(
        self, *, key: str, environment: str | None = None
    ) -> experiment_repo.ExperimentView:
        with read_tx(self.engine) as conn:
            return experiment_repo.get(conn, key=key, environment=environment)

    def put_experiment(
        self,
        *,
        key: str,
        environment: str,
        experiment: Any,
        actor: str,
        if_match: int | None = None,
    ) -> experiment_repo.ExperimentView:
        with write_tx(self.engine) as conn:
            environments.get_or_404(conn, key=environment)
            return experiment_repo.put(
                conn, key=key, environment=environment, experiment=experiment, actor=actor,
                if_match=if_match,
            )

    def transition_experiment(
        self,
        *,
        key: str,
        environment: str | None,
        action: str,
        actor: str,
        if_match: int | None = None,
    ) -> experiment_repo.ExperimentView:
        with write_tx(self.engine) as conn:
            return experiment_repo.transition(
                conn, key=key, environment=environment, action=action, actor=actor,
                if_match=if_match,
            )
