"""Flag lists sorted over every flag and paged along that order (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.errors import Invalid
from flagstaff.store import Store
from flagstaff.store.flag_order import page_in_memory, parse_order
from tests.builders import flag

NAMES = ["alpha", "Beta", "gamma", "alpha", "delta"]  # repeated names tie
KINDS = ["release", "experiment", "operational", "kill-switch"]
TAGS: list[tuple[str, ...]] = [("m",), (), ("c", "x"), ("m",), ("b",)]


@pytest.fixture
def stored(store: Store) -> list[dict[str, Any]]:
    for n in range(23):
        builder = flag(f"f{n:02d}").boolean().name(NAMES[n % 5]).kind(KINDS[n % 4]).tags(*TAGS[n % 5])
        store.create_flag(definition=(builder.on("production") if n % 3 == 0 else builder).build(), actor="a")
    for n in (5, 17, 2):  # updated out of key order
        store.patch_flag(key=f"f{n:02d}", patch={"description": "touched"}, actor="a")
    return [store.get_flag(key=f"f{n:02d}").definition for n in range(23)]


def expected(flags: list[dict[str, Any]], sort: str) -> list[str]:
    descending, field = sort.startswith("-"), sort.lstrip("-")
    values = {
        "key": lambda f: f["key"], "name": lambda f: f["name"].lower(), "kind": lambda f: f["kind"],
        "tags": lambda f: min(f["tags"] or [""]), "updated": lambda f: f["updated_at"],
        "created": lambda f: f["created_at"],
        "status:production": lambda f: 0 if f["environments"].get("production", {}).get("enabled") else 1,
    }[field]
    if field == "key":
        return sorted((f["key"] for f in flags), reverse=descending)
    by_key = sorted(flags, key=lambda f: f["key"])  # ties in key order, whichever the direction
    return [f["key"] for f in sorted(by_key, key=values, reverse=descending)]


SORTS = ["key", "-key", "name", "-name", "kind", "-kind", "tags", "-tags", "updated", "-updated",
         "created", "status:production", "-status:production"]  # fmt: skip


@pytest.mark.parametrize("sort", SORTS)
def test_every_page_follows_the_order_over_all_flags(
    store: Store, stored: list[dict[str, Any]], sort: str
) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_flags(limit=4, cursor=cursor, sort=sort)
        seen += [f.key for f in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected(stored, sort)
    assert len(set(seen)) == 23  # the key tie-break: no flag repeated or skipped across pages


def test_the_same_order_in_memory(stored: list[dict[str, Any]]) -> None:
    for sort in SORTS:
        seen: list[str] = []
        cursor = None
        while True:
            page, cursor = page_in_memory(parse_order(sort), stored, lambda f: f, limit=5, cursor=cursor)
            seen += [f["key"] for f in page]
            if cursor is None:
                break
        assert seen == expected(stored, sort), sort


def test_a_sort_that_is_not_known_or_a_cursor_of_another_sort_is_refused(
    store: Store, stored: list[dict[str, Any]]
) -> None:
    for bad in ("colour", "status:", "--name", "status:bad key"):
        with pytest.raises(Invalid) as info:
            store.list_flags(sort=bad)
        assert info.value.details["field"] == "sort" and "name" in str(info.value)
    cursor = store.list_flags(limit=2, sort="name").next_cursor
    assert cursor is not None
    with pytest.raises(Invalid) as info:
        store.list_flags(limit=2, sort="kind", cursor=cursor)
    assert info.value.details["field"] == "cursor"
