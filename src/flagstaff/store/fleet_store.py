"""The ``Store`` methods of the fleet view (a mixin of :class:`flagstaff.store.Store`).

Fleet writes skip the PostgreSQL writer lock (``serialise=False``): they write no audit record
or change event, and each row belongs to one (key, instance).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from flagstaff.fleet import VersionCount
from flagstaff.store import fleet
from flagstaff.store.db import read_tx, write_tx
from flagstaff.store.fleet import Heard
from flagstaff.store.records import Page


class FleetStoreMixin:
    engine: sa.Engine

    def record_fleet_reports(self, *, heard: list[Heard]) -> None:
        """Store what instances reported (one transaction for the whole batch)."""
        if heard:
            with write_tx(self.engine, serialise=False) as conn:
                fleet.record(conn, heard=heard)

    def fleet_histogram(
        self, *, heard_since_ms: int, stale_before_ms: int, environment: str | None = None
    ) -> tuple[int, list[VersionCount]]:
        """The latest SDK-visible change id and the instances per version, read together."""
        with read_tx(self.engine, consistent=True) as conn:
            latest = fleet.sdk_version(conn)
            rows = fleet.histogram(conn, heard_since_ms=heard_since_ms,
                                   stale_before_ms=stale_before_ms, environment=environment)
        return latest, rows

    def fleet_instances(
        self, *, heard_since_ms: int, stale_before_ms: int, target: int | None = None,
        environment: str | None = None, kind: str | None = None, status: str | None = None,
        limit: int = 100, cursor: str | None = None,
    ) -> tuple[int, Page[dict[str, Any]]]:
        """One page of instances; ``current`` is judged against ``target`` (default: the
        latest SDK-visible change), which is returned with the page."""
        with read_tx(self.engine, consistent=True) as conn:
            goal = fleet.sdk_version(conn) if target is None else target
            page = fleet.instances(
                conn, heard_since_ms=heard_since_ms, stale_before_ms=stale_before_ms,
                target=goal, environment=environment, kind=kind, status=status, limit=limit,
                cursor=cursor,
            )
        return goal, page

    def forget_fleet(self, *, heard_before_ms: int) -> int:
        with write_tx(self.engine, serialise=False) as conn:
            return fleet.forget(conn, heard_before_ms=heard_before_ms)

    def latest_event_of(self, *, target_kind: str, target_key: str) -> int | None:
        """The change event of the newest audited write to a flag or segment."""
        with read_tx(self.engine) as conn:
            return fleet.latest_event_of(conn, target_kind=target_kind, target_key=target_key)
