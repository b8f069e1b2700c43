from __future__ import annotations

import pytest

from flagstaff.errors import Conflict, Invalid, NotFound, PreconditionFailed
from flagstaff.store import Store
from tests.builders import cond, flag, segment


def test_segment_crud_with_versions_audit_and_events(store: Store) -> None:
    created = store.create_segment(
        definition=segment("beta").include("u1").exclude("u9").build(), actor="a"
    )
    assert created.version == 1 and created.definition["included"] == ["u1"]
    with pytest.raises(Conflict) as info:
        store.create_segment(definition=segment("beta").build(), actor="a")
    assert info.value.code == "segment_exists"
    updated = store.replace_segment(
        key="beta",
        definition=segment("beta")
        .include("u1", "u2")
        .rule(cond("email", "ends_with", "@acme.com"))
        .build(),
        actor="a",
        if_match=1,
    )
    assert updated.version == 2
    with pytest.raises(PreconditionFailed):
        store.replace_segment(key="beta", definition=segment("beta").build(), actor="a", if_match=1)
    with pytest.raises(Invalid) as bad:
        store.replace_segment(key="beta", definition={"key": "beta", "included": "u1"}, actor="a")
    assert bad.value.details["field"] == "included"
    assert [s.key for s in store.list_segments().items] == ["beta"]
    store.delete_segment(key="beta", actor="a")
    with pytest.raises(NotFound):
        store.get_segment(key="beta")
    events = store.events_since(after_id=0)
    assert [(e.type, e.kind) for e in events] == [
        ("segment_created", "segment"),
        ("segment_updated", "segment"),
        ("segment_deleted", "segment"),
    ]
    assert events[-1].data is None
    actions = [r.action for r in store.list_audit(target_kind="segment").items]
    assert actions == ["created", "updated", "deleted"]


def test_default_environments_exist(store: Store) -> None:
    keys = {e.key for e in store.list_environments()}
    assert keys == {"development", "staging", "production"}
    assert store.environment_exists(key="staging")
    assert not store.environment_exists(key="moon")


def test_create_environment_validates_and_refuses_duplicates(store: Store) -> None:
    env = store.create_environment(key="qa", name="QA", actor="admin")
    assert env.name == "QA" and store.get_environment(key="qa").key == "qa"
    with pytest.raises(Conflict) as info:
        store.create_environment(key="qa", name="QA", actor="admin")
    assert info.value.code == "environment_exists"
    with pytest.raises(Invalid) as bad:
        store.create_environment(key="Bad Key", name="x", actor="admin")
    assert bad.value.details["field"] == "key"
    with pytest.raises(Invalid) as bad:
        store.create_environment(key="ok", name="x" * 201, actor="admin")
    assert bad.value.details["field"] == "name"
    assert [e.type for e in store.events_since(after_id=0)] == ["environment_created"]


def test_delete_environment_strips_flags_and_revokes_its_keys(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().on("production", "staging").build(), actor="a")
    _token, secret = store.create_token(
        name="sdk", kind="sdk-server", environment="staging", actor="a"
    )
    store.delete_environment(key="staging", actor="admin")
    current = store.get_flag(key="f")
    assert list(current.definition["environments"]) == ["production"]
    assert current.version == 2
    assert store.authenticate(secret=secret) is None
    assert not store.environment_exists(key="staging")
    assert [e.type for e in store.events_since(after_id=1)] == [
        "flag_updated",
        "environment_deleted",  # first, so the key's streams hear why they end
        "token_revoked",
    ]
    with pytest.raises(NotFound):
        store.delete_environment(key="staging", actor="admin")


def test_last_environment_cannot_be_deleted(store: Store) -> None:
    store.delete_environment(key="development", actor="admin")
    store.delete_environment(key="staging", actor="admin")
    with pytest.raises(Conflict):
        store.delete_environment(key="production", actor="admin")
    assert store.environment_exists(key="production")
