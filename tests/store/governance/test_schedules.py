"""Scheduled changes: applied once when due (as an audited write with its change event), late
ones record their lateness, conflicting ones fail visibly, and racing processes apply each
schedule exactly once."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from flagstaff.errors import Conflict, Invalid
from flagstaff.store import Store
from tests.builders import flag
from tests.store.governance.conftest import ALICE, BOB, boolean_flag, flag_audit, production, soon

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_due_schedule_is_applied_once_as_an_audited_write_with_its_lateness(store: Store) -> None:
    boolean_flag(store, "checkout")
    webhook, _ = store.create_webhook(body={"url": "https://example.com/h", "events": ["flag.*"]},
                                      actor=ALICE)
    due = soon(30)
    schedule = store.create_schedule(
        flag="checkout", environment="production", at=due, action="enable", body={},
        description="launch", actor=ALICE,
    )
    assert schedule.status == "pending" and schedule.base_version == 1
    assert store.next_schedule_due() == due
    events_before = store.latest_event_id()

    assert store.run_due_schedule(at=due - timedelta(milliseconds=1)) is None
    done = store.run_due_schedule(at=due + timedelta(milliseconds=1500))
    assert done is not None and done.status == "applied"
    assert done.late_ms == 1500 and done.result_version == 2
    assert store.run_due_schedule(at=due + timedelta(seconds=5)) is None  # never twice
    assert store.next_schedule_due() is None

    assert production(store, "checkout")["enabled"] is True
    write = flag_audit(store, "checkout")[-1]
    assert (write.id, write.action, write.actor) == (done.audit_id, "toggled", f"scheduled by {ALICE}")
    assert write.context == {"schedule": schedule.id, "late_ms": 1500}
    events = store.events_since(after_id=events_before)
    assert [(e.type, e.key, e.data["version"]) for e in events] == [("flag_updated", "checkout", 2)]
    queued = store.list_deliveries(webhook_id=webhook.id).items
    assert [d.event for d in queued] == ["flag.toggled"]
    assert queued[0].payload["context"]["schedule"] == schedule.id


def test_a_schedule_fails_visibly_when_the_flag_changed_where_it_changes_it(store: Store) -> None:
    boolean_flag(store, "checkout")
    store.create_webhook(body={"url": "https://example.com/h", "events": ["schedule.failed"]},
                         actor=ALICE)
    due = soon(30)
    turn_on = store.create_schedule(flag="checkout", environment="production", at=due,
                                    action="enable", body={}, actor=ALICE)
    ramp = store.create_schedule(
        flag="checkout", environment="production", at=due, action="rollout",
        body={"variations": [{"variant": "true", "weight": 50}, {"variant": "false", "weight": 50}]},
        actor=ALICE,
    )
    # Someone turned it on and killed it again: the value is as scheduled against, but the
    # enabled switch was touched since, so the schedule must not overwrite that decision.
    store.set_flag_enabled(key="checkout", environment="production", enabled=True, actor=BOB)
    store.set_flag_enabled(key="checkout", environment="production", enabled=False, actor=BOB,
                           action="killed")
    store.patch_flag(key="checkout", patch={"description": "unrelated"}, actor=BOB)
    version = store.get_flag(key="checkout").version

    first, second = store.run_due_schedules(at=due)
    assert (first.id, first.status) == (turn_on.id, "failed")
    assert first.error is not None and first.error["code"] == "schedule_conflict"
    assert "environments.production.enabled" in first.error["message"]
    # The rollout touches only the fallthrough, which nobody changed: it applies.
    assert (second.id, second.status) == (ramp.id, "applied")
    assert store.get_flag(key="checkout").version == version + 1
    assert production(store, "checkout")["enabled"] is False
    failed = store.list_audit(target_kind="schedule", target_key=str(turn_on.id)).items[-1]
    assert failed.action == "failed" and failed.actor == "scheduler"
    assert failed.context["error"]["code"] == "schedule_conflict"
    hook = store.list_webhooks()[0]
    assert [d.event for d in store.list_deliveries(webhook_id=hook.id).items] == ["schedule.failed"]


@sqlite_only
def test_schedule_kinds_edits_cancellation_and_bad_input(store: Store) -> None:
    store.create_flag(
        definition=flag("ramp").boolean().env(
            "production", lambda e: e.on().rule("beta", serve="true").fallthrough_rollout(true=0, false=100)
        ).build(),
        actor=ALICE,
    )
    due = soon(60)
    weights = [(10, 90), (25, 75), (50, 50)]
    for n, (on, off) in enumerate(weights):
        store.create_schedule(
            flag="ramp", environment="production", at=due + timedelta(minutes=n), action="rollout",
            body={"variations": [{"variant": "true", "weight": on}, {"variant": "false", "weight": off}]},
            actor=ALICE,
        )
    store.create_schedule(
        flag="ramp", environment="production", at=due + timedelta(minutes=5), action="rollout",
        body={"rule": "beta", "variations": [{"variant": "true", "weight": 30},
                                             {"variant": "false", "weight": 70}]},
        actor=ALICE,
    )
    patch = store.create_schedule(
        flag="ramp", environment="production", at=due + timedelta(minutes=6), action="patch",
        body={"patch": {"targets": [{"variant": "true", "values": ["u1"]}]}}, actor=ALICE,
    )
    moved = store.update_schedule(schedule_id=patch.id, body={"at": due + timedelta(minutes=7)},
                                  actor=BOB)
    assert moved.due_at == due + timedelta(minutes=7)
    off = store.create_schedule(flag="ramp", environment="production", at=due, action="disable",
                                body={}, actor=ALICE)
    assert store.cancel_schedule(schedule_id=off.id, actor=BOB).status == "cancelled"
    with pytest.raises(Conflict):
        store.cancel_schedule(schedule_id=off.id, actor=BOB)

    seen = []
    for n in range(3):
        (step,) = store.run_due_schedules(at=due + timedelta(minutes=n, seconds=1))
        seen.append(production(store, "ramp")["fallthrough"]["rollout"]["variations"][0]["weight"])
        assert step.status == "applied"
    assert seen == [10, 25, 50]
    done = store.run_due_schedules(at=due + timedelta(minutes=8))
    assert [d.status for d in done] == ["applied", "applied"]
    config = production(store, "ramp")
    assert config["rules"][0]["serve"]["rollout"]["variations"][0]["weight"] == 30
    assert config["targets"] == [{"variant": "true", "values": ["u1"]}]
    assert [s.status for s in store.list_schedules(flag="ramp").items].count("applied") == 5

    bad = [
        (dict(action="enable", at=soon(-3600)), "at"),
        (dict(action="fly", at=due), "action"),
        (dict(action="rollout", at=due, body={"variations": [{"variant": "true", "weight": 60}]}),
         "environments.production.fallthrough.rollout.variations"),
        (dict(action="rollout", at=due, body={"rule": "nope", "variations": [
            {"variant": "true", "weight": 100}]}), "rule"),
        (dict(action="patch", at=due, body={"patch": {}}), "patch"),
    ]
    for kwargs, field in bad:
        with pytest.raises(Invalid) as caught:
            store.create_schedule(flag="ramp", environment="production",
                                  body=kwargs.pop("body", {}), actor=ALICE, **kwargs)
        assert str(caught.value.details["field"]).startswith(field), caught.value.details

    # Under an approval policy, direct schedules are refused when made, and fail when due if
    # the policy was turned on after they were made.
    late = store.create_schedule(flag="ramp", environment="production", at=due + timedelta(hours=1),
                                 action="disable", body={"description": "x"}, actor=ALICE)
    store.put_policy(environment="production", body={"required_approvals": 1,
                                                     "kill_requires_review": True}, actor=ALICE)
    with pytest.raises(Conflict, match="requires review"):
        store.create_schedule(flag="ramp", environment="production", at=due, action="patch",
                              body={"patch": {"targets": []}}, actor=ALICE)
    (failed,) = store.run_due_schedules(at=due + timedelta(hours=2))
    assert (failed.id, failed.status) == (late.id, "failed")
    assert failed.error is not None and failed.error["code"] == "review_required"


def test_two_processes_racing_for_the_same_due_schedules_apply_each_exactly_once(
    store: Store, database_url: str
) -> None:
    # Two stores = two connection pools, as two replicas have; threads start together.
    other = Store.open(database_url)
    try:
        keys = [f"race-{n}" for n in range(8)]
        due = soon(30)
        for key in keys:
            boolean_flag(store, key)
            store.create_schedule(flag=key, environment="production", at=due, action="enable",
                                  body={}, actor=ALICE)
        start = threading.Barrier(4)
        applied: list[int] = []
        lock = threading.Lock()

        def race(replica: Store) -> None:
            start.wait()
            done = replica.run_due_schedules(at=due + timedelta(seconds=1))
            with lock:
                applied.extend(s.id for s in done)

        threads = [threading.Thread(target=race, args=(s,)) for s in (store, other, store, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(applied) == sorted(s.id for s in store.list_schedules().items)
        assert len(applied) == len(set(applied)) == len(keys)
        for key in keys:
            scheduled = [r for r in flag_audit(store, key) if r.actor.startswith("scheduled by")]
            assert len(scheduled) == 1
            assert store.get_flag(key=key).version == 2
    finally:
        other.close()


def test_a_burst_due_at_one_instant_is_applied_in_batches_oldest_first(store: Store) -> None:
    due = soon(30)
    made = []
    for n in range(5):
        boolean_flag(store, f"burst-{n}")
        made.append(store.create_schedule(
            flag=f"burst-{n}", environment="production", at=due, action="enable", body={},
            actor=ALICE,
        ))
    events_before = store.latest_event_id()

    first = store.run_due_schedules(at=due, limit=3)
    assert [s.id for s in first] == [s.id for s in made[:3]]
    assert all(s.status == "applied" and s.late_ms == 0 for s in first)
    # What a batch returns is what was stored (it is not read back).
    assert [store.get_schedule(schedule_id=s.id) for s in first] == first
    statuses = {s.id: s.status for s in store.list_schedules().items}
    assert [statuses[s.id] for s in made] == ["applied"] * 3 + ["pending"] * 2
    rest = store.run_due_schedules(at=due, limit=3)
    assert [s.id for s in rest] == [s.id for s in made[3:]]
    assert store.run_due_schedules(at=due) == []
    events = store.events_since(after_id=events_before)
    assert [e.key for e in events] == [f"burst-{n}" for n in range(5)]


def test_a_batch_reads_environments_policies_and_subscriptions_once(store: Store) -> None:
    due = soon(30)
    store.create_webhook(body={"url": "https://example.com/a", "events": ["flag.*"]}, actor=ALICE)
    for n in range(4):
        boolean_flag(store, f"shared-{n}")
        store.create_schedule(flag=f"shared-{n}", environment="production", at=due,
                              action="enable", body={}, actor=ALICE)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        done = store.run_due_schedules(at=due, limit=2)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    assert [s.status for s in done] == ["applied", "applied"]
    for table in ("environments", "approval_policies", "webhooks"):
        reads = [s for s in statements if s.startswith("SELECT") and f"FROM {table}" in s]
        assert len(reads) <= 2, (table, reads)  # once per batch (one query per kind of lookup)
    # Two audited writes: nothing re-read, no unchanged tag or reference rows rewritten.
    assert not [s for s in statements if "flag_tags" in s or "object_refs" in s]
    # Begin, claim, the flags in one read, one savepoint around the batch and four shared
    # lookups; then per write: the flag's update, change event, audit record, delivery and
    # schedule status (16 or 17 statements per write before batching its reads).
    assert len(statements) <= 9 + 2 * 5, statements

    # The shared reads end with the batch: a subscription made now hears the next one.
    later, _ = store.create_webhook(body={"url": "https://example.com/b", "events": ["flag.*"]},
                                    actor=ALICE)
    assert [s.status for s in store.run_due_schedules(at=due)] == ["applied", "applied"]
    assert [d.event for d in store.list_deliveries(webhook_id=later.id).items] == [
        "flag.toggled", "flag.toggled"]


def test_a_failure_in_a_batch_is_recorded_and_the_rest_apply_as_if_each_ran_alone(
    store: Store,
) -> None:
    boolean_flag(store, "ramped")
    boolean_flag(store, "moved")
    due = soon(30)
    weights = [{"variant": "true", "weight": 10}, {"variant": "false", "weight": 90}]
    first = store.create_schedule(flag="ramped", environment="production", at=due,
                                  action="rollout", body={"variations": weights}, actor=ALICE)
    doomed = store.create_schedule(flag="moved", environment="production", at=due,
                                   action="enable", body={}, actor=ALICE)
    weights = [{"variant": "true", "weight": 50}, {"variant": "false", "weight": 50}]
    second = store.create_schedule(flag="ramped", environment="production", at=due,
                                   action="rollout", body={"variations": weights}, actor=ALICE)
    store.set_flag_enabled(key="moved", environment="production", enabled=True, actor=BOB)
    store.set_flag_enabled(key="moved", environment="production", enabled=False, actor=BOB)

    done = store.run_due_schedules(at=due)
    assert [(s.id, s.status) for s in done] == [
        (first.id, "applied"), (doomed.id, "failed"), (second.id, "applied")]
    # The ramp's two steps are two writes in order, each once (not rolled back, not doubled).
    assert (done[0].result_version, done[2].result_version) == (2, 3)
    assert store.get_flag(key="ramped").version == 3
    rollout = production(store, "ramped")["fallthrough"]["rollout"]["variations"]
    assert [v["weight"] for v in rollout] == [50, 50]
    writes = [e for e in flag_audit(store, "ramped") if e.actor == f"scheduled by {ALICE}"]
    assert [e.context["schedule"] for e in writes] == [first.id, second.id]
    assert [s.status for s in store.list_schedules().items] == ["applied", "failed", "applied"]
