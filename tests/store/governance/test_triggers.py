"""Incoming triggers: a secret that kills one flag in one environment, audited and revocable."""

from __future__ import annotations

import pytest

from flagstaff.errors import Conflict, NotFound
from flagstaff.store import Store
from tests.store.governance.conftest import ALICE, boolean_flag, flag_audit, production


def test_a_trigger_kills_its_flag_once_per_call_until_revoked(store: Store) -> None:
    boolean_flag(store, "checkout", on=True)
    store.put_policy(environment="production", body={"required_approvals": 1}, actor=ALICE)
    trigger, secret = store.create_trigger(flag="checkout", environment="production",
                                           name="error rate", actor=ALICE)
    assert secret.startswith("fst_") and trigger.id.startswith("trg_")

    fired, record = store.fire_trigger(secret=secret)
    assert fired.fire_count == 1 and record.version == 2
    assert production(store, "checkout")["enabled"] is False
    kill = flag_audit(store, "checkout")[-1]
    assert (kill.action, kill.actor) == ("killed", f"trigger error rate ({trigger.id})")
    assert kill.context == {"trigger": trigger.id, "bypassed_review": ["production"]}
    fired, record = store.fire_trigger(secret=secret)  # already off: counted, nothing written
    assert fired.fire_count == 2 and record.version == 2
    calls = store.list_audit(target_kind="trigger", target_key=trigger.id).items
    assert [(c.action, c.context["changed"] if c.context else None) for c in calls] == [
        ("created", None), ("fired", True), ("fired", False)]
    assert secret not in str([c.to_dict() for c in calls])

    store.put_policy(environment="production", body={"kill_requires_review": True}, actor=ALICE)
    store.put_policy(environment="production", body={"required_approvals": 0}, actor=ALICE)
    store.set_flag_enabled(key="checkout", environment="production", enabled=True, actor=ALICE)
    store.put_policy(environment="production", body={"required_approvals": 1}, actor=ALICE)
    with pytest.raises(Conflict, match="review"):
        store.fire_trigger(secret=secret)

    assert store.revoke_trigger(trigger_id=trigger.id, actor=ALICE).revoked_at is not None
    with pytest.raises(NotFound):
        store.fire_trigger(secret=secret)
    with pytest.raises(NotFound):
        store.fire_trigger(secret="fst_" + "x" * 43)
    assert [t.id for t in store.list_triggers(flag="checkout")] == [trigger.id]
