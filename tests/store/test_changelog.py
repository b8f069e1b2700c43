from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from flagstaff.errors import NotFound
from flagstaff.store import Store
from tests.builders import flag, segment


def _writes(store: Store) -> None:
    store.create_flag(definition=flag("a").boolean().on("production").build(), actor="x")
    store.patch_flag(key="a", patch={"owner": "o"}, actor="x")
    store.set_flag_enabled(key="a", environment="production", enabled=False, actor="x")
    store.archive_flag(key="a", actor="x")
    store.restore_flag(key="a", actor="x")
    store.create_segment(definition=segment("s").include("u").build(), actor="x")


def test_one_event_per_write_with_monotonic_ids_and_types(store: Store) -> None:
    assert store.latest_event_id() == 0 and store.oldest_event_id() is None
    _writes(store)
    events = store.events_since(after_id=0)
    assert [e.type for e in events] == [
        "flag_created",
        "flag_updated",
        "flag_updated",
        "flag_archived",
        "flag_restored",
        "segment_created",
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert store.latest_event_id() == ids[-1]
    assert [e.data["version"] for e in events[:5]] == [1, 2, 3, 4, 5]
    assert events[3].data["state"] == "archived"


def test_events_since_returns_the_tail_in_order_with_limit(store: Store) -> None:
    _writes(store)
    ids = [e.id for e in store.events_since(after_id=0)]
    assert [e.id for e in store.events_since(after_id=ids[2])] == ids[3:]
    assert [e.id for e in store.events_since(after_id=ids[0], limit=2)] == ids[1:3]
    assert store.events_since(after_id=ids[-1]) == []


def test_prune_by_count_keeps_newest_and_ids_are_never_reused(store: Store) -> None:
    _writes(store)
    ids = [e.id for e in store.events_since(after_id=0)]
    assert store.prune(max_count=2) == 4
    assert store.oldest_event_id() == ids[-2]
    assert store.prune(max_count=100) == 0
    assert store.prune(max_age_seconds=0) == 1
    assert [e.id for e in store.events_since(after_id=0)] == [ids[-1]]
    store.create_segment(definition=segment("t").build(), actor="x")
    assert store.latest_event_id() == ids[-1] + 1


def _plans(store: Store, statements: list[tuple[str, Any]]) -> list[str]:
    """Each statement's query plan, with table scans made as unattractive as possible on
    PostgreSQL so that a plan still showing one has no index to use."""
    plans = []
    with store.engine.begin() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, parameters in statements:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(explain + statement, parameters).all()
            plans.append(" | ".join(str(row[-1]) for row in rows))
    return plans


def test_prune_walks_index_ranges_never_the_whole_table(store: Store) -> None:
    # Retention runs every few minutes under the writer lock; a scan there reads every stored
    # payload (on SQLite through the server's own memory, which the allocator keeps).
    _writes(store)
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "change_events" in statement:
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        assert store.prune(max_count=2, max_age_seconds=3600) == 4
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert len(statements) >= 3  # the newest id, then one delete per retention rule
    for statement, plan in zip(statements, _plans(store, statements), strict=True):
        assert "SCAN change_events" not in plan and "Seq Scan" not in plan, (statement[0], plan)


def test_prune_by_age_keeps_recent_events(store: Store) -> None:
    _writes(store)
    assert store.prune(max_age_seconds=3600) == 0
    assert len(store.events_since(after_id=0)) == 6


def test_snapshot_is_resolved_for_the_environment_and_excludes_archived(store: Store) -> None:
    store.create_flag(definition=flag("on").boolean().on("production").build(), actor="x")
    store.create_flag(definition=flag("gone").boolean().on("production").build(), actor="x")
    store.archive_flag(key="gone", actor="x")
    store.create_segment(definition=segment("s").include("u").build(), actor="x")
    snap = store.snapshot(environment="production")
    assert snap["environment"] == "production"
    assert snap["version"] == store.latest_event_id() == 4
    assert list(snap["flags"]) == ["on"]
    assert snap["flags"]["on"]["enabled"] is True and snap["flags"]["on"]["version"] == 1
    assert snap["segments"]["s"]["included"] == ["u"]
    staging = store.snapshot(environment="staging")
    assert staging["flags"]["on"]["enabled"] is False
    with pytest.raises(NotFound):
        store.snapshot(environment="moon")
