from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flagstaff.errors import Invalid
from flagstaff.store import Store
from flagstaff.store.audit import structural_diff
from tests.builders import cond, flag


def test_diff_lists_changed_leaves_with_readable_paths() -> None:
    before = {
        "name": "a",
        "environments": {
            "prod": {"enabled": False, "rules": [{"id": "r", "serve": {"variant": "x"}}]}
        },
    }
    after = {
        "environments": {
            "prod": {
                "enabled": True,
                "rules": [{"id": "r", "serve": {"variant": "y"}}, {"id": "s"}],
            }
        },
        "owner": "t",
    }
    assert structural_diff(before, after) == [
        {"path": "name", "op": "remove", "old": "a", "new": None},
        {"path": "environments.prod.enabled", "op": "replace", "old": False, "new": True},
        {
            "path": "environments.prod.rules[0].serve.variant",
            "op": "replace",
            "old": "x",
            "new": "y",
        },
        {"path": "environments.prod.rules[1]", "op": "add", "old": None, "new": {"id": "s"}},
        {"path": "owner", "op": "add", "old": None, "new": "t"},
    ]


def test_diff_treats_scalar_lists_as_one_value_and_tells_types_apart() -> None:
    assert structural_diff({"tags": ["a", "b"]}, {"tags": ["z", "a", "b"]}) == [
        {"path": "tags", "op": "replace", "old": ["a", "b"], "new": ["z", "a", "b"]}
    ]
    assert structural_diff({"v": 1}, {"v": 1.0}) == [
        {"path": "v", "op": "replace", "old": 1, "new": 1.0}
    ]
    assert structural_diff({"v": True}, {"v": True}) == []


def test_flag_history_holds_before_after_and_diff(store: Store) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="alice")
    store.replace_flag(
        key="f",
        definition=flag("f")
        .boolean()
        .env(
            "production", lambda e: e.on().rule("beta", cond("tenant.id", "in", "t1"), serve="true")
        )
        .build(),
        actor="bob",
    )
    created, updated = store.list_audit(target_kind="flag", target_key="f").items
    assert created.before is None and created.after["version"] == 1
    assert updated.before["version"] == 1 and updated.after["version"] == 2
    assert updated.actor == "bob" and updated.action == "updated"
    paths = [d["path"] for d in updated.diff]
    assert paths == ["environments.production"]
    assert updated.diff[0]["op"] == "add"
    assert updated.diff[0]["new"]["rules"][0]["id"] == "beta"
    assert updated.created_at >= created.created_at


def test_audit_filters_and_pagination(store: Store) -> None:
    for i in range(5):
        store.create_flag(
            definition=flag(f"f{i}").boolean().build(), actor="alice" if i % 2 else "bob"
        )
    store.archive_flag(key="f1", actor="bob")
    assert [r.target_key for r in store.list_audit(actor="alice").items] == ["f1", "f3"]
    assert [r.target_key for r in store.list_audit(action="archived").items] == ["f1"]
    page1 = store.list_audit(limit=4)
    assert len(page1.items) == 4 and page1.next_cursor
    page2 = store.list_audit(limit=4, cursor=page1.next_cursor)
    assert [r.id for r in page1.items + page2.items] == sorted(
        r.id for r in page1.items + page2.items
    )
    assert len(page2.items) == 2 and page2.next_cursor is None
    future = datetime.now(UTC) + timedelta(hours=1)
    assert store.list_audit(since=future).items == []
    assert len(store.list_audit(until=future).items) == 6
    with pytest.raises(Invalid) as info:
        store.list_audit(since=datetime(2024, 1, 1))
    assert info.value.details["field"] == "since"
