"""Change requests: four eyes as the policy says, applied only against their base version,
every step audited and linked to the resulting write."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flagstaff.errors import Conflict, Forbidden, Invalid, PreconditionFailed
from flagstaff.store import Store
from flagstaff.store.governance.records import ChangeRequestRecord
from tests.store.governance.conftest import ALICE, BOB, boolean_flag, flag_audit, production, soon

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
CAROL = "carol (token tok_carol)"


def propose(store: Store, **kwargs: Any) -> ChangeRequestRecord:
    arguments: dict[str, Any] = {"patch": {"enabled": True}, "description": "launch", **kwargs}
    return store.create_change_request(
        flag="checkout", environment="production", actor=ALICE, token_id="tok_alice", **arguments
    )


def review(store: Store, cr_id: int, verdict: str, who: str, role: str = "editor",
           comment: str | None = None) -> ChangeRequestRecord:
    token = who.split("token ")[1].rstrip(")")
    return store.review_change_request(change_request_id=cr_id, verdict=verdict, comment=comment,
                                       actor=who, token_id=token, role=role)


def test_four_eyes_then_apply_is_audited_and_linked(store: Store) -> None:
    boolean_flag(store, "checkout")
    store.put_policy(environment="production", body={"required_approvals": 1}, actor=ALICE)
    cr = propose(store)
    assert cr.status == "open" and cr.base_version == 1
    assert cr.diff == [{"path": "environments.production.enabled", "op": "replace",
                       "old": False, "new": True}]

    with pytest.raises(Forbidden, match="author of a change may not approve"):
        review(store, cr.id, "approved", ALICE)
    with pytest.raises(Forbidden, match="editor role"):
        review(store, cr.id, "approved", CAROL, role="viewer")
    with pytest.raises(Conflict, match="0 of 1 approval"):
        store.apply_change_request(change_request_id=cr.id, actor=ALICE)
    review(store, cr.id, "commented", CAROL, comment="why now?")
    approved = review(store, cr.id, "approved", BOB)
    assert approved.status == "approved" and approved.approvers == [BOB]

    applied = store.apply_change_request(change_request_id=cr.id, actor=ALICE)
    assert applied.status == "applied" and applied.applied_version == 2
    assert production(store, "checkout")["enabled"] is True
    write = flag_audit(store, "checkout")[-1]
    assert write.id == applied.applied_audit_id
    assert write.actor == f"{ALICE} via change request #{cr.id}"
    assert write.context == {"change_request": cr.id, "approved_by": [BOB]}
    steps = store.list_audit(target_kind="change_request", target_key=str(cr.id)).items
    assert [s.action for s in steps] == ["created", "commented", "approved", "applied"]
    assert steps[1].context == {"comment": "why now?"}
    assert steps[-1].context == {"audit_id": write.id, "version": 2}
    with pytest.raises(Conflict, match="applied"):
        store.apply_change_request(change_request_id=cr.id, actor=ALICE)


def test_a_change_request_whose_base_moved_is_a_reported_conflict_never_an_overwrite(
    store: Store,
) -> None:
    boolean_flag(store, "checkout", on=True)
    store.put_policy(environment="production", body={"required_approvals": 1}, actor=ALICE)
    cr = propose(store, patch={"fallthrough": {"variant": "true"}})
    review(store, cr.id, "approved", BOB)
    store.set_flag_enabled(key="checkout", environment="production", enabled=False, actor=CAROL,
                           action="killed")  # the incident kill moves the flag on
    before = store.get_flag(key="checkout")

    with pytest.raises(PreconditionFailed) as caught:
        store.apply_change_request(change_request_id=cr.id, actor=ALICE)
    assert caught.value.details["base_version"] == 1
    assert caught.value.details["current_version"] == 2
    assert caught.value.details["changed_paths"] == ["environments.production.enabled"]
    assert store.get_flag(key="checkout").definition == before.definition
    failed = store.get_change_request(change_request_id=cr.id)
    assert failed.status == "conflict" and failed.error is not None
    assert failed.error["code"] == "precondition_failed"
    steps = store.list_audit(target_kind="change_request", target_key=str(cr.id)).items
    assert [s.action for s in steps] == ["created", "approved", "failed"]


@sqlite_only
def test_scheduled_application_and_its_conflict(store: Store) -> None:
    boolean_flag(store, "checkout")
    store.put_policy(environment="production",
                     body={"required_approvals": 2, "author_may_approve": True,
                           "approver_role": "admin"}, actor=ALICE)
    cr = propose(store)
    with pytest.raises(Forbidden, match="admin role"):
        review(store, cr.id, "approved", BOB)
    assert review(store, cr.id, "approved", ALICE, role="admin").status == "open"
    with pytest.raises(Conflict, match="already approved"):
        review(store, cr.id, "approved", ALICE, role="admin")
    assert review(store, cr.id, "approved", BOB, role="admin").status == "approved"

    due = soon(60)
    planned = store.apply_change_request(change_request_id=cr.id, actor=ALICE, at=due)
    assert planned.status == "scheduled" and planned.schedule_id is not None
    schedule = store.get_schedule(schedule_id=planned.schedule_id)
    assert (schedule.action, schedule.change_request_id) == ("change_request", cr.id)
    # Cancelling the schedule returns the request to approved; scheduling again works.
    store.cancel_schedule(schedule_id=schedule.id, actor=ALICE)
    assert store.get_change_request(change_request_id=cr.id).status == "approved"
    planned = store.apply_change_request(change_request_id=cr.id, actor=ALICE, at=due)
    (ran,) = store.run_due_schedules(at=due + timedelta(seconds=2))
    assert ran.status == "applied" and ran.late_ms == 2000
    done = store.get_change_request(change_request_id=cr.id)
    assert done.status == "applied" and production(store, "checkout")["enabled"] is True
    assert flag_audit(store, "checkout")[-1].context == {
        "change_request": cr.id, "approved_by": [ALICE, BOB], "schedule": ran.id, "late_ms": 2000,
    }

    # A scheduled request whose base moved before it was due fails: schedule and request.
    second = propose(store, patch={"fallthrough": {"variant": "true"}})
    review(store, second.id, "approved", ALICE, role="admin")
    review(store, second.id, "approved", BOB, role="admin")
    store.apply_change_request(change_request_id=second.id, actor=ALICE, at=due + timedelta(hours=1))
    store.patch_flag(key="checkout", patch={"description": "moved"}, actor=BOB)
    (ran,) = store.run_due_schedules(at=due + timedelta(hours=2))
    assert ran.status == "failed" and ran.error is not None
    assert ran.error["code"] == "precondition_failed"
    assert store.get_change_request(change_request_id=second.id).status == "conflict"


@sqlite_only
def test_rejection_cancellation_and_bad_proposals(store: Store) -> None:
    boolean_flag(store, "checkout")
    store.put_policy(environment="production", body={"required_approvals": 1}, actor=ALICE)
    cr = propose(store)
    with pytest.raises(Invalid, match="comment"):
        review(store, cr.id, "rejected", BOB)
    rejected = review(store, cr.id, "rejected", BOB, comment="not before the freeze ends")
    assert rejected.status == "rejected"
    with pytest.raises(Conflict, match="rejected"):
        review(store, cr.id, "approved", BOB)

    other = propose(store)
    with pytest.raises(Forbidden, match="author"):
        store.cancel_change_request(change_request_id=other.id, actor=BOB, token_id="tok_bob",
                                    role="editor")
    cancelled = store.cancel_change_request(change_request_id=other.id, actor=ALICE,
                                            token_id="tok_alice", role="editor")
    assert cancelled.status == "cancelled"

    bad = [
        ({"patch": {"enabled": False}}, "patch"),  # changes nothing
        ({"patch": {"enabled": True}, "config": {"enabled": True}}, "patch"),
        ({"patch": None}, "patch"),
        ({"patch": {"fallthrough": {"variant": "maybe"}}}, "patch.fallthrough"),
        ({"patch": None, "config": {"enabled": "yes"}}, "config.enabled"),
    ]
    for kwargs, field in bad:
        with pytest.raises(Invalid) as caught:
            propose(store, **kwargs)
        assert str(caught.value.details["field"]).startswith(field), (kwargs, caught.value.details)
    with pytest.raises(PreconditionFailed):
        propose(store, base_version=7)
    page = store.list_change_requests(status="rejected")
    assert [c.id for c in page.items] == [cr.id]
    assert [c.id for c in store.list_change_requests().items] == [other.id, cr.id]


def test_a_proposal_that_moves_users_says_how_many(store: Store) -> None:
    boolean_flag(store, "checkout", on=True)
    rollout = {"rollout": {"variations": [{"variant": "true", "weight": 30}, {"variant": "false", "weight": 70}]}}
    cr = propose(store, patch={"fallthrough": rollout})
    [moved] = [d for d in cr.diff if d["op"] == "reassign"]
    # Everyone got the off variant (false); the proposal gives 30 % of them true.
    assert (moved["path"], moved["share"], moved["exact"]) == ("environments.production.fallthrough", 0.3, True)
    assert store.get_change_request(change_request_id=cr.id).diff == cr.diff
