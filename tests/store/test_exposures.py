"""Ingestion (idempotent batches, validation) and exposure reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flagstaff.errors import Invalid, NotFound
from flagstaff.store import Store
from flagstaff.store.schema import exposures, ingest_batches
from tests.builders import flag

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def exposure(user: str, variant: str, at: datetime, *, flag_key: str = "f", **extra: Any) -> dict[str, Any]:
    return {"flag_key": flag_key, "variant": variant, "user_key": user, "timestamp": at.isoformat(),
            "reason": "SPLIT", "flag_version": 3, "in_experiment": True, **extra}


def rows(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_retried_batch_is_not_counted_twice(store: Store) -> None:
    events = [exposure(f"u{i}", "a", T0) for i in range(5)]
    first = store.ingest_exposures(environment="production", batch_id="b-1", events=events)
    again = store.ingest_exposures(environment="production", batch_id="b-1", events=events)
    assert (first.accepted, first.duplicate) == (5, False)
    assert (again.accepted, again.duplicate) == (0, True)
    assert rows(store, exposures) == 5
    other = store.ingest_exposures(environment="production", batch_id="b-2", events=events[:2])
    assert other.accepted == 2 and rows(store, exposures) == 7


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"variant": "a", "user_key": "u", "timestamp": "2025-01-01T00:00:00Z"}, "events[1].flag_key"),
        ({"flag_key": "f", "variant": "a", "user_key": "u", "timestamp": "yesterday"}, "events[1].timestamp"),
        ({"flag_key": "f", "variant": "a", "user_key": "", "timestamp": "2025-01-01T00:00:00Z"},
         "events[1].user_key"),
        ({"flag_key": "f", "variant": "a", "user_key": "u", "timestamp": "2025-01-01T00:00:00Z",
          "in_experiment": "yes"}, "events[1].in_experiment"),
        ({"flag_key": "f", "variant": "a", "user_key": "u", "timestamp": "2025-01-01T00:00:00Z",
          "flag_version": -1}, "events[1].flag_version"),
        ("not an object", "events[1]"),
    ],
)
def test_bad_events_name_the_field_and_write_nothing(store: Store, event: Any, field: str) -> None:
    with pytest.raises(Invalid) as caught:
        store.ingest_exposures(environment="production", batch_id="bad", events=[exposure("u", "a", T0), event])
    assert caught.value.details["field"] == field
    assert rows(store, exposures) == 0 and rows(store, ingest_batches) == 0
    # the batch id was not used up: the corrected batch is accepted
    assert store.ingest_exposures(environment="production", batch_id="bad", events=[]).duplicate is False


def test_batch_limits(store: Store) -> None:
    with pytest.raises(Invalid) as too_many:
        store.ingest_exposures(environment="production", batch_id="big",
                               events=[exposure("u", "a", T0)] * 10_001)
    assert too_many.value.details["field"] == "events"
    with pytest.raises(Invalid) as bad_id:
        store.ingest_exposures(environment="production", batch_id="has space", events=[])
    assert bad_id.value.details["field"] == "batch_id"


def test_metric_events_validation(store: Store) -> None:
    ok = store.ingest_metric_events(environment="production", batch_id="m1", events=[
        {"metric": "checkout", "user_key": "u1", "value": None, "timestamp": T0.isoformat()},
        {"metric": "revenue", "user_key": "u1", "value": 12.5, "timestamp": "2025-03-01T10:00:00"},
    ])
    assert ok.accepted == 2
    for bad, field in [({"metric": "bad metric"}, "events[0].metric"), ({"value": float("nan")}, "events[0].value"),
                       ({"value": True}, "events[0].value")]:
        event = {"metric": "m", "user_key": "u", "value": 1, "timestamp": T0.isoformat(), **bad}
        with pytest.raises(Invalid) as caught:
            store.ingest_metric_events(environment="production", batch_id="m2", events=[event])
        assert caught.value.details["field"] == field


def test_exposure_totals_time_series_and_range(store: Store) -> None:
    store.create_flag(definition=flag("f").build(), actor="t")
    events = [
        exposure("u1", "a", T0), exposure("u1", "a", T0 + timedelta(minutes=5)),
        exposure("u2", "a", T0 + timedelta(hours=1, minutes=1)),
        exposure("u3", "b", T0 + timedelta(hours=1, minutes=2)),
        exposure("u3", "b", T0 + timedelta(days=1)),
        exposure("u9", "a", T0, flag_key="other"),
    ]
    store.ingest_exposures(environment="production", batch_id="e1", events=events)
    store.ingest_exposures(environment="staging", batch_id="e2", events=[exposure("u5", "a", T0)])

    report = store.exposure_report(key="f", environment="production", bucket="hour").to_dict()
    assert report["variants"] == [
        {"variant": "a", "evaluations": 3, "unique_users": 2},
        {"variant": "b", "evaluations": 2, "unique_users": 1},
    ]
    assert report["total"] == {"evaluations": 5}
    series = [(p["start"], p["variant"], p["evaluations"], p["unique_users"]) for p in report["series"]]
    assert series == [
        ("2025-03-01T10:00:00.000000Z", "a", 2, 1),
        ("2025-03-01T11:00:00.000000Z", "a", 1, 1),
        ("2025-03-01T11:00:00.000000Z", "b", 1, 1),
        ("2025-03-02T10:00:00.000000Z", "b", 1, 1),
    ]
    daily = store.exposure_report(key="f", environment="production", bucket="day").to_dict()
    assert [(p["start"][:10], p["variant"], p["evaluations"]) for p in daily["series"]] == [
        ("2025-03-01", "a", 3), ("2025-03-01", "b", 1), ("2025-03-02", "b", 1)]
    ranged = store.exposure_report(
        key="f", environment="production", since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=2)
    ).to_dict()
    assert ranged["variants"] == [{"variant": "a", "evaluations": 1, "unique_users": 1},
                                  {"variant": "b", "evaluations": 1, "unique_users": 1}]
    with pytest.raises(Invalid) as backwards:
        store.exposure_report(key="f", environment="production", since=T0, until=T0)
    assert backwards.value.details["field"] == "until"
    with pytest.raises(NotFound):
        store.exposure_report(key="nope", environment="production")


def test_evaluation_counts_add_up_per_day(store: Store) -> None:
    window = {"window_start": "2025-03-01T10:00:00Z", "window_end": "2025-03-01T10:01:00Z"}
    counts = [{"flag_key": "f", "variant": "a", "count": 3}, {"flag_key": "f", "variant": "a", "count": 2},
              {"flag_key": "f", "variant": "b", "count": 0}]
    assert store.ingest_evaluation_counts(environment="production", batch_id="c1", counts=counts, **window).accepted == 3
    assert store.ingest_evaluation_counts(environment="production", batch_id="c1", counts=counts, **window).duplicate
    store.ingest_evaluation_counts(environment="production", batch_id="c2",
                                   counts=[{"flag_key": "f", "variant": "a", "count": 10}],
                                   window_start="2025-03-01T09:00:00Z", window_end="2025-03-01T09:01:00Z")
    with store.engine.connect() as conn:
        got = conn.execute(sa.text("SELECT variant, day, count, last_ms FROM evaluation_counts")).all()
    end = int(datetime(2025, 3, 1, 10, 1, tzinfo=UTC).timestamp() * 1000)
    assert [tuple(r) for r in got] == [("a", end // 86_400_000, 15, end)]
    with pytest.raises(Invalid) as caught:
        store.ingest_evaluation_counts(environment="production", batch_id="c3", counts=[],
                                       window_start="2025-03-02T00:00:00Z", window_end="2025-03-01T00:00:00Z")
    assert caught.value.details["field"] == "window_end"
