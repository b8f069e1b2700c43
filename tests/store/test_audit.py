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


def _rolled(*order: tuple[str, float], salt: str | None = None) -> dict[str, object]:
    return (
        flag("rolled").boolean().salt(salt)
        .env("staging", lambda e: e.on().fallthrough_rollout(dict(order)))
        .build()
    )


def test_a_write_that_only_reorders_a_rollout_changes_nothing(store: Store) -> None:
    store.create_flag(definition=_rolled(("true", 10), ("false", 90)), actor="alice")
    same = store.replace_flag(key="rolled", definition=_rolled(("false", 90), ("true", 10)), actor="bob")
    assert same.version == 1
    variations = same.definition["environments"]["staging"]["fallthrough"]["rollout"]["variations"]
    assert [v["variant"] for v in variations] == ["true", "false"]
    assert [r.action for r in store.list_audit(target_kind="flag", target_key="rolled").items] == [
        "created"
    ]


def test_writes_that_move_users_say_how_many_in_the_audit_diff(store: Store) -> None:
    store.create_flag(definition=_rolled(("true", 10), ("false", 90)), actor="alice")
    store.replace_flag(key="rolled", definition=_rolled(("false", 75), ("true", 25)), actor="bob")
    store.replace_flag(
        key="rolled", definition=_rolled(("false", 75), ("true", 25), salt="fresh"), actor="bob"
    )
    _, reweighted, resalted = store.list_audit(target_kind="flag", target_key="rolled").items
    [moved] = [d for d in reweighted.diff if d["op"] == "reassign"]
    # true 10 / false 90 -> false 75 / true 25: buckets [0, 10 %) and [75 %, 100 %) change hands.
    assert moved == {
        "path": "environments.staging.fallthrough", "op": "reassign", "old": None, "new": None,
        "share": 0.35, "exact": True, "causes": ["weights"],
    }
    [moved] = [d for d in resalted.diff if d["op"] == "reassign"]
    assert (moved["share"], moved["exact"], moved["causes"]) == (0.375, False, ["salt"])


def test_audit_newest_first_pages_backwards(store: Store) -> None:
    for i in range(5):
        store.create_flag(definition=flag(f"n{i}").boolean().build(), actor="alice")
    first = store.list_audit(newest_first=True, limit=3)
    rest = store.list_audit(newest_first=True, limit=3, cursor=first.next_cursor)
    assert [r.target_key for r in first.items + rest.items] == ["n4", "n3", "n2", "n1", "n0"]
    assert rest.next_cursor is None


def test_audit_environment_filter_sees_toggles_and_edits_of_that_environment(store: Store) -> None:
    store.create_flag(definition=flag("e_x").boolean().build(), actor="alice")
    store.set_flag_enabled(key="e_x", environment="staging", enabled=True, actor="alice")
    store.set_flag_enabled(key="e_x", environment="production", enabled=True, actor="bob")
    store.set_flag_enabled(
        key="e_x", environment="production", enabled=False, actor="bob", action="killed",
        reason="errors",
    )
    store.patch_flag(
        key="e_x", patch={"environments": {"production": {"fallthrough": {"variant": "true"}}}},
        actor="carol",
    )
    store.patch_flag(key="e_x", patch={"description": "no environment"}, actor="carol")
    production = store.list_audit(target_key="e_x", environment="production", newest_first=True)
    assert [(r.actor, r.action) for r in production.items] == [
        ("carol", "updated"), ("bob", "killed"), ("bob", "toggled"),
    ]
    assert production.items[1].context == {"reason": "errors"}
    staging = store.list_audit(target_key="e_x", environment="staging")
    assert [r.action for r in staging.items] == ["toggled"]
    # LIKE's wildcards in a key match only themselves: "e_x" is not "eXx"
    assert store.list_audit(environment="product_on").items == []
