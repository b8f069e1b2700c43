from __future__ import annotations

import pytest

from flagstaff.errors import Conflict, Invalid, NotFound
from flagstaff.store import Store
from tests.builders import cond, flag, segment, segment_match


def _with_prereq(key: str, prereq: str) -> dict[str, object]:
    return (
        flag(key).boolean().env("production", lambda e: e.on().prerequisite(prereq, "true")).build()
    )


def _nothing_written(store: Store, events_before: int) -> None:
    assert store.latest_event_id() == events_before


def test_missing_prerequisite_is_refused_naming_the_field(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.create_flag(definition=_with_prereq("a", "ghost"), actor="x")
    assert info.value.details["field"] == "environments.production.prerequisites[0].flag"
    assert "ghost" in info.value.message
    _nothing_written(store, 0)


def test_archived_prerequisite_is_refused(store: Store) -> None:
    store.create_flag(definition=flag("base").boolean().build(), actor="x")
    store.archive_flag(key="base", actor="x")
    with pytest.raises(Invalid) as info:
        store.create_flag(definition=_with_prereq("a", "base"), actor="x")
    assert "archived" in info.value.message


def test_prerequisite_of_an_active_flag_cannot_be_archived(store: Store) -> None:
    store.create_flag(definition=flag("base").boolean().build(), actor="x")
    store.create_flag(definition=_with_prereq("a", "base"), actor="x")
    with pytest.raises(Conflict) as info:
        store.archive_flag(key="base", actor="x")
    assert info.value.details["dependants"] == ["a"]
    store.archive_flag(key="a", actor="x")
    assert store.archive_flag(key="base", actor="x").state == "archived"


def test_prerequisite_cycle_is_refused_naming_the_cycle(store: Store) -> None:
    store.create_flag(definition=flag("a").boolean().build(), actor="x")
    store.create_flag(definition=_with_prereq("b", "a"), actor="x")
    events = store.latest_event_id()
    with pytest.raises(Invalid) as info:
        store.replace_flag(key="a", definition=_with_prereq("a", "b"), actor="x")
    assert "a -> b -> a" in info.value.message
    assert info.value.details["field"] == "environments.production.prerequisites[0].flag"
    assert store.get_flag(key="a").version == 1
    _nothing_written(store, events)
    with pytest.raises(Invalid) as info:
        store.replace_flag(key="a", definition=_with_prereq("a", "a"), actor="x")
    assert "a -> a" in info.value.message


def test_unknown_environment_in_definition_is_refused(store: Store) -> None:
    with pytest.raises(Invalid) as info:
        store.create_flag(definition=flag("f").boolean().on("moon").build(), actor="x")
    assert info.value.details["field"] == "environments.moon"


def test_missing_segment_is_refused_and_existing_one_accepted(store: Store) -> None:
    body = (
        flag("f")
        .boolean()
        .env("production", lambda e: e.on().rule("r", segment_match("beta"), serve="true"))
        .build()
    )
    with pytest.raises(Invalid) as info:
        store.create_flag(definition=body, actor="x")
    assert info.value.details["field"] == "environments.production.rules[0].conditions[0].values[0]"
    store.create_segment(definition=segment("beta").include("u1").build(), actor="x")
    assert store.create_flag(definition=body, actor="x").version == 1


def test_referenced_segment_cannot_be_deleted(store: Store) -> None:
    store.create_segment(definition=segment("beta").include("u1").build(), actor="x")
    body = (
        flag("f")
        .boolean()
        .env("production", lambda e: e.on().rule("r", segment_match("beta"), serve="true"))
        .build()
    )
    store.create_flag(definition=body, actor="x")
    store.archive_flag(key="f", actor="x")
    with pytest.raises(Conflict) as info:
        store.delete_segment(key="beta", actor="x")
    assert "flag 'f'" in info.value.message
    assert store.get_segment(key="beta").version == 1


def test_segment_cycle_is_refused(store: Store) -> None:
    store.create_segment(definition=segment("s1").include("u").build(), actor="x")
    store.create_segment(definition=segment("s2").rule(segment_match("s1")).build(), actor="x")
    with pytest.raises(Invalid) as info:
        store.replace_segment(
            key="s1", definition=segment("s1").rule(segment_match("s2")).build(), actor="x"
        )
    assert "s1 -> s2 -> s1" in info.value.message
    assert store.get_segment(key="s1").version == 1
    store.replace_segment(
        key="s2", definition=segment("s2").rule(cond("a", "equals", "b")).build(), actor="x"
    )
    store.delete_segment(key="s1", actor="x")
    with pytest.raises(NotFound):
        store.get_segment(key="s1")
