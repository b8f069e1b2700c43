"""Approval policies: direct writes to a protected environment are refused, naming the policy;
the incident kill stays one action (recorded as bypassing review) unless the policy says not."""

from __future__ import annotations

import pytest

from flagstaff.errors import Conflict, Invalid
from flagstaff.store import Store
from tests.builders import flag
from tests.store.governance.conftest import ALICE, BOB, boolean_flag, flag_audit, production

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_policy_refuses_direct_configuration_writes_and_lets_the_kill_through(
    store: Store,
) -> None:
    boolean_flag(store, "checkout", on=True)
    store.put_policy(environment="production", body={"required_approvals": 1}, actor=ALICE)
    version = store.get_flag(key="checkout").version

    refused = [
        lambda: store.patch_flag(
            key="checkout", patch={"environments": {"production": {"fallthrough": {"variant": "true"}}}},
            actor=BOB),
        lambda: store.replace_flag(
            key="checkout", actor=BOB,
            definition=flag("checkout").boolean().env("production", lambda e: e.on().target("true", "u1")).build()),
        lambda: store.set_flag_enabled(key="checkout", environment="production", enabled=True, actor=BOB,
                                       action="toggled"),
        lambda: store.create_flag(
            definition=flag("new-one").boolean().env("production", lambda e: e.on()).build(), actor=BOB),
    ]
    store.set_flag_enabled(key="checkout", environment="production", enabled=False, actor=BOB)
    for write in refused:
        with pytest.raises(Conflict) as caught:
            write()
        error = caught.value
        assert error.code == "review_required"
        assert "production" in error.message and "1 approval" in error.message
        assert error.details["policy"]["required_approvals"] == 1
        assert error.details["environment"] == "production"
    # The kill above went through as one action, recorded as bypassing review.
    kill = flag_audit(store, "checkout")[-1]
    assert kill.context == {"bypassed_review": ["production"]}
    assert store.get_flag(key="checkout").version == version + 1
    assert production(store, "checkout")["enabled"] is False

    # Other environments, metadata and new flags not configured in production stay free.
    store.patch_flag(key="checkout", patch={"description": "now documented",
                                            "environments": {"staging": {"enabled": True}}}, actor=BOB)
    store.create_flag(definition=flag("staging-only").boolean().env("staging", lambda e: e.on()).build(),
                      actor=BOB)
    assert flag_audit(store, "checkout")[-1].context is None

    # Policy off again: everything is a direct write.
    store.put_policy(environment="production", body={"required_approvals": 0}, actor=ALICE)
    store.set_flag_enabled(key="checkout", environment="production", enabled=True, actor=BOB)
    policy_audit = store.list_audit(target_kind="environment", target_key="production").items
    assert [r.action for r in policy_audit] == ["policy_updated"] * 2


def test_removing_the_incident_exception_makes_kills_need_review(store: Store) -> None:
    boolean_flag(store, "checkout", on=True)
    store.put_policy(
        environment="production", body={"required_approvals": 1, "kill_requires_review": True},
        actor=ALICE,
    )
    with pytest.raises(Conflict, match="kills need review too") as caught:
        store.set_flag_enabled(
            key="checkout", environment="production", enabled=False, actor=BOB, action="killed"
        )
    assert caught.value.code == "review_required"
    assert production(store, "checkout")["enabled"] is True


@sqlite_only
def test_deleting_a_protected_environment_is_the_admins_call(store: Store) -> None:
    store.create_environment(key="eu", actor=ALICE)
    store.create_flag(definition=flag("f").boolean().env("eu", lambda e: e.on()).build(), actor=ALICE)
    store.put_policy(environment="eu", body={"required_approvals": 2}, actor=ALICE)
    store.delete_environment(key="eu", actor=ALICE)
    assert "eu" not in store.get_flag(key="f").definition["environments"]
    assert flag_audit(store, "f")[-1].context == {"environment_deleted": "eu"}
    assert all(p.environment != "eu" for p in store.list_policies())


@sqlite_only
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"required_approvals": -1}, "required_approvals"),
        ({"required_approvals": 11}, "required_approvals"),
        ({"required_approvals": True}, "required_approvals"),
        ({"approver_role": "viewer"}, "approver_role"),
        ({"author_may_approve": "yes"}, "author_may_approve"),
        ({"approvals": 1}, "approvals"),
    ],
)
def test_a_bad_policy_names_the_field(store: Store, body: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        store.put_policy(environment="production", body=body, actor=ALICE)
    assert caught.value.details["field"] == field
    assert store.get_policy(environment="production").required_approvals == 0
