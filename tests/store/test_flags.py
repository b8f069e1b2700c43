from __future__ import annotations

import pytest

from flagstaff.errors import Conflict, Invalid, NotFound, PreconditionFailed
from flagstaff.store import Store
from tests.builders import flag


def test_create_and_get_returns_canonical_definition_with_server_fields(store: Store) -> None:
    created = store.create_flag(
        definition=flag("new-checkout").boolean().tags("checkout").on("production").build(),
        actor="alice",
    )
    fetched = store.get_flag(key="new-checkout")
    assert fetched.definition == created.definition
    assert fetched.version == 1 and fetched.state == "active"
    assert fetched.definition["environments"]["production"]["enabled"] is True
    assert fetched.definition["created_at"].endswith("Z")
    assert list(fetched.definition)[:3] == ["key", "name", "description"]


def test_server_fields_in_input_are_ignored(store: Store) -> None:
    body = flag("f").boolean().build() | {"version": 99, "state": "archived"}
    created = store.create_flag(definition=body, actor="a")
    assert created.version == 1 and created.state == "active"


def test_duplicate_key_is_conflict_flag_exists(store: Store) -> None:
    store.create_flag(definition=flag("dup").boolean().build(), actor="a")
    with pytest.raises(Conflict) as info:
        store.create_flag(definition=flag("dup").string({"x": "x"}).build(), actor="a")
    assert info.value.code == "flag_exists"
    assert store.get_flag(key="dup").definition["type"] == "boolean"


def test_invalid_definition_names_field_and_writes_nothing(store: Store) -> None:
    bad = flag("bad").number({"one": 1}).set("off_variant", "missing").build()
    with pytest.raises(Invalid) as info:
        store.create_flag(definition=bad, actor="a")
    assert info.value.details["field"] == "off_variant"
    with pytest.raises(NotFound):
        store.get_flag(key="bad")
    assert store.latest_event_id() == 0
    assert store.list_audit().items == []


def test_missing_flag_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get_flag(key="nope")
    with pytest.raises(NotFound):
        store.replace_flag(key="nope", definition=flag("nope").boolean().build(), actor="a")


def test_list_paginates_in_key_order_with_opaque_cursor(store: Store) -> None:
    keys = [f"flag-{i:02d}" for i in range(7)]
    for key in reversed(keys):
        store.create_flag(definition=flag(key).boolean().build(), actor="a")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_flags(limit=3, cursor=cursor)
        seen += [f.key for f in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        assert "flag-" not in page.next_cursor
        cursor = page.next_cursor
    assert seen == keys and pages == 3


def test_list_filters_by_state_tag_and_search(store: Store) -> None:
    store.create_flag(
        definition=flag("checkout-v2").boolean().tags("payments").name("New Checkout").build(),
        actor="a",
    )
    store.create_flag(
        definition=flag("search").boolean().tags("ui").description("Faster 100%_SEARCH").build(),
        actor="a",
    )
    store.create_flag(definition=flag("old").boolean().tags("ui").build(), actor="a")
    store.archive_flag(key="old", actor="a")

    def keys(**filters: str) -> list[str]:
        return [f.key for f in store.list_flags(**filters).items]  # type: ignore[arg-type]

    assert keys(tag="ui") == ["old", "search"]
    assert keys(state="active") == ["checkout-v2", "search"]
    assert keys(state="archived") == ["old"]
    assert keys(q="CHECKOUT") == ["checkout-v2"]
    assert keys(q="new checkout") == ["checkout-v2"]
    assert keys(q="100%_s") == ["search"]
    assert keys(q="0%x") == []
    assert keys(tag="ui", state="active") == ["search"]


def test_list_rejects_bad_parameters(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.list_flags(cursor="!!!not-a-cursor")
    assert info.value.details["field"] == "cursor"
    with pytest.raises(Invalid) as info:
        store.list_flags(state="deleted")
    assert info.value.details["field"] == "state"
    with pytest.raises(Invalid):
        store.list_flags(limit=0)


def test_replace_bumps_version_and_refuses_key_change(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="a")
    updated = store.replace_flag(
        key="f", definition=flag("f").boolean().owner("team-x").build(), actor="b"
    )
    assert updated.version == 2 and updated.definition["owner"] == "team-x"
    with pytest.raises(Invalid) as info:
        store.replace_flag(key="f", definition=flag("g").boolean().build(), actor="b")
    assert info.value.details["field"] == "key"
    assert store.get_flag(key="f").version == 2


def test_identical_write_is_a_no_op(store: Store) -> None:
    body = flag("f").boolean().on("production").build()
    store.create_flag(definition=body, actor="a")
    again = store.replace_flag(key="f", definition=body, actor="a")
    assert again.version == 1
    assert store.latest_event_id() == 1
    assert len(store.list_audit().items) == 1


def test_merge_patch_changes_only_named_fields(store: Store) -> None:
    store.create_flag(
        definition=flag("f").boolean().owner("o").tags("t").on("production", "staging").build(),
        actor="a",
    )
    patched = store.patch_flag(
        key="f",
        patch={"description": "hello", "tags": None, "environments": {"staging": None}},
        actor="a",
    )
    assert patched.definition["description"] == "hello"
    assert patched.definition["tags"] == []
    assert patched.definition["owner"] == "o"
    assert list(patched.definition["environments"]) == ["production"]
    assert patched.version == 2


def test_merge_patch_refuses_key_change_and_invalid_result(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="a")
    with pytest.raises(Invalid) as info:
        store.patch_flag(key="f", patch={"key": "other"}, actor="a")
    assert info.value.details["field"] == "key"
    with pytest.raises(Invalid) as info:
        store.patch_flag(key="f", patch={"type": "colour"}, actor="a")
    assert info.value.details["field"] == "type"
    with pytest.raises(Invalid):
        store.patch_flag(key="f", patch=["not", "an", "object"], actor="a")
    assert store.get_flag(key="f").version == 1


def test_stale_if_match_is_refused_and_changes_nothing(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="a")
    store.patch_flag(key="f", patch={"owner": "x"}, actor="a", if_match=1)
    with pytest.raises(PreconditionFailed):
        store.patch_flag(key="f", patch={"owner": "y"}, actor="a", if_match=1)
    with pytest.raises(PreconditionFailed):
        store.set_flag_enabled(
            key="f", environment="production", enabled=True, actor="a", if_match=1
        )
    with pytest.raises(PreconditionFailed):
        store.archive_flag(key="f", actor="a", if_match=1)
    current = store.get_flag(key="f")
    assert current.version == 2 and current.definition["owner"] == "x" and current.state == "active"
    assert store.latest_event_id() == 2


def test_toggle_and_kill_record_their_action_and_environment(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="a")
    on = store.set_flag_enabled(key="f", environment="staging", enabled=True, actor="bob")
    assert on.definition["environments"]["staging"]["enabled"] is True
    killed = store.set_flag_enabled(
        key="f", environment="staging", enabled=False, actor="carol", action="killed"
    )
    assert killed.definition["environments"]["staging"]["enabled"] is False
    records = store.list_audit(target_key="f").items
    assert [(r.action, r.environment, r.actor) for r in records] == [
        ("created", None, "a"),
        ("toggled", "staging", "bob"),
        ("killed", "staging", "carol"),
    ]
    assert records[2].diff == [
        {"path": "environments.staging.enabled", "op": "replace", "old": True, "new": False}
    ]
    with pytest.raises(NotFound):
        store.set_flag_enabled(key="f", environment="moon", enabled=True, actor="a")
    with pytest.raises(Invalid):
        store.set_flag_enabled(key="f", environment="staging", enabled="yes", actor="a")  # type: ignore[arg-type]


def test_disabling_an_unconfigured_environment_is_a_no_op(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="a")
    same = store.set_flag_enabled(key="f", environment="production", enabled=False, actor="a")
    assert same.version == 1 and same.definition["environments"] == {}


def test_archive_and_restore(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().on("production").build(), actor="a")
    archived = store.archive_flag(key="f", actor="a")
    assert archived.state == "archived" and archived.version == 2
    assert store.get_flag(key="f").state == "archived"
    assert "f" not in store.snapshot(environment="production")["flags"]
    with pytest.raises(Conflict):
        store.patch_flag(key="f", patch={"owner": "x"}, actor="a")
    restored = store.restore_flag(key="f", actor="a")
    assert restored.state == "active" and restored.version == 3
    assert "f" in store.snapshot(environment="production")["flags"]
    actions = [r.action for r in store.list_audit(target_key="f").items]
    assert actions == ["created", "archived", "restored"]


def test_a_write_returns_the_flag_as_stored_and_keeps_its_tags_index(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().tags("checkout").build(), actor="a")
    # A write that keeps the tags (the index is left as it is) ...
    kept = store.replace_flag(
        key="f", definition=flag("f").boolean().tags("checkout").owner("team-x").build(), actor="b"
    )
    assert kept == store.get_flag(key="f")
    assert [f.key for f in store.list_flags(tag="checkout").items] == ["f"]
    # ... and one that changes them (the index follows): what it returns is what a read returns.
    moved = store.replace_flag(
        key="f", definition=flag("f").boolean().tags("payments").on("production").build(),
        actor="b",
    )
    assert moved == store.get_flag(key="f") and moved.version == 3
    assert store.list_flags(tag="checkout").items == []
    assert [f.key for f in store.list_flags(tag="payments").items] == ["f"]
