"""Code references reported per repository: a report replaces its repository's previous one
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flagstaff.errors import Invalid, NotFound
from flagstaff.store import Store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def ref(key: str, file: str, line: int, kind: str = "sdk-call") -> dict[str, object]:
    return {"key": key, "file": file, "line": line, "kind": kind}


def test_a_report_replaces_its_repository_and_leaves_the_others(store: Store) -> None:
    store.report_code_references(
        repository="shop", actor="ci", revision="abc123", now=T0,
        references=[ref("checkout", "src/pay.py", 40), ref("checkout", "src/cart.py", 7),
                    ref("banner", "src/ui.py", 3, "literal")],
    )
    store.report_code_references(
        repository="mobile", actor="ci", now=T0, references=[ref("checkout", "app/Pay.kt", 12)]
    )
    found = [r.to_dict() for r in store.flag_code_references(key="checkout")]
    assert [(r["repository"], r["count"]) for r in found] == [("mobile", 1), ("shop", 2)]
    assert found[1]["references"] == [  # by file, then line
        {"file": "src/cart.py", "line": 7, "kind": "sdk-call"},
        {"file": "src/pay.py", "line": 40, "kind": "sdk-call"},
    ]
    assert found[1]["scanned_at"].startswith("2026-12-01T09:00:00") and found[1]["revision"] == "abc123"

    later = T0 + timedelta(hours=2)
    report = store.report_code_references(
        repository="shop", actor="ci", now=later, references=[ref("banner", "src/ui.py", 5)]
    )
    assert (report.reference_count, report.flag_count) == (1, 1)
    assert [r.repository for r in store.flag_code_references(key="checkout")] == ["mobile"]
    banner = store.flag_code_references(key="banner")
    assert banner[0].references == [{"file": "src/ui.py", "line": 5, "kind": "sdk-call"}]
    assert banner[0].scanned_at == later
    assert [(r.repository, r.reference_count) for r in store.code_repositories()] == [
        ("mobile", 1), ("shop", 1)
    ]
    assert store.flag_code_references(key="nowhere") == []


def test_a_long_list_is_cut_but_counted_and_a_repository_can_be_forgotten(store: Store) -> None:
    store.report_code_references(
        repository="big", actor="ci", references=[ref("hot", f"f{i:03d}.py", 1) for i in range(120)]
    )
    found = store.flag_code_references(key="hot", shown=10)
    assert found[0].count == 120 and len(found[0].references) == 10
    assert store.forget_code_repository(repository="big").reference_count == 120
    assert store.flag_code_references(key="hot") == [] and store.code_repositories() == []
    with pytest.raises(NotFound):
        store.forget_code_repository(repository="big")
    empty = store.report_code_references(repository="big", actor="ci", references=[])
    assert empty.reference_count == 0 and [r.repository for r in store.code_repositories()] == ["big"]


@pytest.mark.parametrize(("repository", "references", "field"), [
    ("", [], "repository"),
    ("x" * 201, [], "repository"),
    ("bad\nname", [], "repository"),
    ("ok", [ref("k", "a.py", 0)], "references[0].line"),
    ("ok", [ref("k", "a.py", 1), ref("", "a.py", 1)], "references[1].key"),
    ("ok", [{"key": "k", "line": 1}], "references[0].file"),
    ("ok", [ref("k", "a.py", 1, "guess")], "references[0].kind"),
    ("ok", "not a list", "references"),
])  # fmt: skip
def test_a_bad_report_is_refused_and_changes_nothing(
    store: Store, repository: str, references: object, field: str
) -> None:
    store.report_code_references(repository="ok", actor="ci", references=[ref("k", "a.py", 1)])
    with pytest.raises(Invalid) as info:
        store.report_code_references(repository=repository, actor="ci", references=references)  # type: ignore[arg-type]
    assert info.value.details["field"] == field
    assert store.flag_code_references(key="k")[0].count == 1
