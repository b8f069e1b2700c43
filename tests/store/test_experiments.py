"""Experiments in the store: status machine as audited flag writes, result aggregates, staleness."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flagstaff.errors import Conflict, Invalid, NotFound
from flagstaff.store import Store
from tests.builders import flag

T0 = datetime(2025, 3, 1, tzinfo=UTC)
BLOCK = {"variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}],
         "control": "false", "primary_metric": "checkout", "salt": "exp-1"}


def setup(store: Store, *, metric_kind: str = "conversion") -> None:
    store.create_flag(definition=flag("f").kind("experiment").on().build(), actor="t")
    store.put_experiment(key="f", environment="production", actor="t",
                         experiment={**BLOCK, "metric_kind": metric_kind})


def test_status_machine_is_enforced_and_audited(store: Store) -> None:
    setup(store)
    assert store.get_experiment(key="f").experiment["status"] == "draft"
    with pytest.raises(Conflict) as caught:
        store.transition_experiment(key="f", environment="production", action="pause", actor="t")
    assert caught.value.details == {"from": "draft", "to": "paused", "environment": "production"}
    assert caught.value.code == "invalid_transition"
    for action, status in [("start", "running"), ("pause", "paused"), ("resume", "running"),
                           ("pause", "paused"), ("complete", "completed")]:
        view = store.transition_experiment(key="f", environment=None, action=action, actor="erin")
        assert view.experiment["status"] == status
    with pytest.raises(Conflict) as done:
        store.transition_experiment(key="f", environment="production", action="resume", actor="t")
    assert (done.value.details["from"], done.value.details["to"]) == ("completed", "running")
    actions = [r.action for r in store.list_audit(target_key="f").items]
    assert actions == ["created", "experiment_updated", "experiment_started", "experiment_paused",
                       "experiment_resumed", "experiment_paused", "experiment_completed"]
    # every transition is a flag version and a change event the stream carries
    assert store.get_flag(key="f").version == 7
    events = store.events_since(after_id=0)
    assert events[-1].data is not None
    assert events[-1].data["environments"]["production"]["experiment"]["status"] == "completed"


def test_configuration_is_frozen_once_started(store: Store) -> None:
    setup(store)
    store.transition_experiment(key="f", environment="production", action="start", actor="t")
    with pytest.raises(Conflict) as caught:
        store.put_experiment(key="f", environment="production", experiment=BLOCK, actor="t")
    assert caught.value.details["from"] == "running"
    store.transition_experiment(key="f", environment="production", action="complete", actor="t")
    fresh = store.put_experiment(key="f", environment="production", experiment={**BLOCK, "salt": "exp-2"}, actor="t")
    assert (fresh.experiment["status"], fresh.experiment["salt"]) == ("draft", "exp-2")


def test_put_validates_and_refuses_status(store: Store) -> None:
    store.create_flag(definition=flag("f").on().build(), actor="t")
    with pytest.raises(Invalid) as status:
        store.put_experiment(key="f", environment="production", experiment={**BLOCK, "status": "running"}, actor="t")
    assert status.value.details["field"] == "status"
    with pytest.raises(Invalid) as control:
        store.put_experiment(key="f", environment="production", experiment={**BLOCK, "control": "x"}, actor="t")
    assert control.value.details["field"] == "environments.production.experiment.control"
    with pytest.raises(NotFound):
        store.put_experiment(key="f", environment="nowhere", experiment=BLOCK, actor="t")
    with pytest.raises(NotFound):
        store.get_experiment(key="f", environment="production")
    assert store.get_flag(key="f").version == 1  # nothing half-written


def exposure(user: str, variant: str, minutes: int, *, in_experiment: bool = True) -> dict[str, Any]:
    return {"flag_key": "f", "variant": variant, "user_key": user, "in_experiment": in_experiment,
            "timestamp": (T0 + timedelta(minutes=minutes)).isoformat(), "reason": "SPLIT"}


def metric(user: str, minutes: int, value: float | None = None, name: str = "checkout") -> dict[str, Any]:
    return {"metric": name, "user_key": user, "value": value,
            "timestamp": (T0 + timedelta(minutes=minutes)).isoformat()}


def test_conversion_aggregates_count_only_events_after_first_exposure(store: Store) -> None:
    setup(store)
    store.ingest_exposures(environment="production", batch_id="e", events=[
        exposure("c1", "false", 10), exposure("c1", "false", 20), exposure("c2", "false", 10),
        exposure("t1", "true", 10), exposure("t2", "true", 10), exposure("t3", "true", 10),
        exposure("both", "false", 10), exposure("both", "true", 11),  # allocation changed: left out
        exposure("outside", "false", 10, in_experiment=False),
    ])
    store.ingest_exposures(environment="staging", batch_id="s", events=[exposure("s1", "true", 1)])
    store.ingest_metric_events(environment="production", batch_id="m", events=[
        metric("c1", 15), metric("c1", 16),       # converts once, counted once
        metric("c2", 5),                          # before exposure: not a conversion
        metric("t1", 10), metric("t2", 30),       # at and after exposure
        metric("t3", 30, name="other"),           # another metric
        metric("outside", 30), metric("both", 30),
    ])
    _, _, data = store.experiment_data(key="f", environment="production")
    got = {v: (a.users, a.conversions) for v, a in data.variants.items()}
    assert got == {"false": (2, 1), "true": (3, 2)}
    assert data.multiple_variant_users == 1


def test_numeric_aggregates_sum_per_user_with_zeros(store: Store) -> None:
    setup(store, metric_kind="numeric")
    store.ingest_exposures(environment="production", batch_id="e", events=[
        exposure("c1", "false", 10), exposure("c2", "false", 10), exposure("c3", "false", 10),
        exposure("t1", "true", 10), exposure("t2", "true", 10),
    ])
    store.ingest_metric_events(environment="production", batch_id="m", events=[
        metric("c1", 11, 10.0), metric("c1", 12, 5.0), metric("c2", 1, 99.0),
        metric("t1", 20, 4.0), metric("t2", 20, 6.0), metric("t2", 21, None),
    ])
    _, _, data = store.experiment_data(key="f", environment="production")
    control, treatment = data.variants["false"], data.variants["true"]
    # c1 = 15, c2 = 0 (event before exposure), c3 = 0 (no event)
    assert (control.users, control.total, control.sum_squares) == (3, 15.0, 225.0)
    assert (treatment.users, treatment.total, treatment.sum_squares) == (2, 10.0, 52.0)


def counts(store: Store, batch: str, at: datetime, **variants: int) -> None:
    store.ingest_evaluation_counts(
        environment="production", batch_id=batch, window_start=at.isoformat(),
        window_end=(at + timedelta(minutes=1)).isoformat(),
        counts=[{"flag_key": k.split("__")[0], "variant": k.split("__")[1], "count": n}
                for k, n in variants.items()],
    )


def test_stale_detection_by_kind_with_controlled_clock(store: Store) -> None:
    for key, kind in [("idle", "release"), ("single", "release"), ("mixed", "release"),
                      ("young", "release"), ("ops", "operational"), ("kill", "kill-switch"),
                      ("never", "release"), ("perm", "permission")]:
        store.create_flag(definition=flag(key).kind(kind).on().build(), actor="t")
    # after the flags exist: "never" is then at least 100 days old however slow creation was
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=100, seconds=1)
    counts(store, "1", now - timedelta(days=45), idle__true=5, single__true=3, mixed__true=1, ops__true=1, kill__true=1)
    counts(store, "2", now - timedelta(days=20), single__true=3, mixed__true=4, ops__true=2)
    counts(store, "3", now - timedelta(days=1), single__true=7, mixed__false=2, young__true=1, ops__false=1)
    counts(store, "4", now - timedelta(days=3), ops__true=1)
    found = {f.record.key: f for f in store.stale_flags(now=now)}
    assert set(found) == {"idle", "single", "never"}
    assert found["idle"].stale_reason == "not evaluated for 44 days"
    assert found["idle"].last_evaluated_at == now - timedelta(days=45) + timedelta(minutes=1)
    assert found["single"].stale_reason == "served a single variant to everyone for 40 days"
    assert found["single"].served_variant == "true"
    assert found["never"].stale_reason.startswith("not evaluated for 100 days")
    assert found["never"].last_evaluated_at is None
    # thresholds are configurable: within 2 days the operational flag served only "false"
    stricter = {"release": None, "operational": 2, "kill-switch": 30}
    again = {f.record.key: f for f in store.stale_flags(now=now, thresholds=stricter)}
    assert set(again) == {"kill", "ops"}
    assert again["ops"].served_variant == "false"
    assert again["kill"].stale_reason == "not evaluated for 44 days"


def test_runs_scope_the_aggregates_to_their_own_span_and_versions(store: Store) -> None:
    setup(store)
    store.transition_experiment(key="f", environment="production", action="start", actor="t")
    version_1 = store.get_flag(key="f").version

    def plant(batch: str, version: int, **users: str) -> None:
        at = datetime.now(UTC).isoformat()
        store.ingest_exposures(environment="production", batch_id=batch, events=[
            {"flag_key": "f", "variant": v, "user_key": u, "in_experiment": True, "timestamp": at,
             "reason": "SPLIT", "flag_version": version} for u, v in users.items()])

    time.sleep(0.01)
    plant("r1", version_1, a="false", b="true", c="true")
    time.sleep(0.01)
    store.transition_experiment(key="f", environment="production", action="complete", actor="t")
    store.put_experiment(key="f", environment="production", actor="t", experiment={**BLOCK, "salt": "s2"})
    store.transition_experiment(key="f", environment="production", action="start", actor="t")
    version_2 = store.get_flag(key="f").version
    time.sleep(0.01)
    plant("r2", version_2, a="true", d="false")
    # A late report from an SDK still on run 1's flag version is not run 2's.
    plant("late", version_1, e="false")

    _, run, latest = store.experiment_data(key="f", environment="production")
    assert run is not None and (run.number, run.salt, run.ended_ms) == (2, "s2", None)
    assert {v: a.users for v, a in latest.variants.items()} == {"true": 1, "false": 1}
    assert latest.multiple_variant_users == 0  # user a is in both runs, once in each
    _, run, earlier = store.experiment_data(key="f", environment="production", run=1)
    assert run is not None and run.number == 1 and run.ended_ms is not None
    assert {v: a.users for v, a in earlier.variants.items()} == {"false": 1, "true": 2}
    with pytest.raises(NotFound):
        store.experiment_data(key="f", environment="production", run=3)
