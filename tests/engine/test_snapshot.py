"""Snapshot updates: new snapshots, only the changed object and its dependents recompiled."""

from __future__ import annotations

from flagstaff.engine import ErrorCode, Reason, compile_snapshot
from tests.builders import cond, flag, segment, segment_match, snapshot

CTX = {"key": "user-1", "plan": "pro"}


def _seg_flag(key: str, seg: str) -> object:
    return flag(key).env("production", lambda e: e.on().rule("r", segment_match(seg), serve="true")
                         .fallthrough("false"))


def test_with_flag_returns_new_snapshot_and_keeps_others_compiled() -> None:
    base = compile_snapshot(snapshot([flag("a").on(), flag("b").on()]))
    changed = base.with_flag(flag("a").env("production", lambda e: e.off()).resolved(version=2))
    assert base.evaluate("a", CTX).reason is Reason.FALLTHROUGH  # old snapshot unchanged
    d = changed.evaluate("a", CTX)
    assert (d.reason, d.version) == (Reason.DISABLED, 2)
    assert changed._table["b"] is base._table["b"]  # not recompiled
    assert changed._table["a"] is not base._table["a"]


def test_without_flag_and_archived_flag() -> None:
    base = compile_snapshot(snapshot([flag("a").on(), flag("b").on()]))
    assert base.without_flag("a").evaluate("a", CTX).error_code is ErrorCode.FLAG_NOT_FOUND
    archived = {**flag("b").on().resolved(), "state": "archived"}
    after = base.with_flag(archived)
    assert after.evaluate("b", CTX).error_code is ErrorCode.FLAG_NOT_FOUND
    assert after.flag_keys() == ["a"]


def test_prerequisite_change_needs_no_recompile() -> None:
    dependent = flag("d").env("production", lambda e: e.on().prerequisite("g", "true").fallthrough("true"))
    base = compile_snapshot(snapshot([dependent, flag("g").on()]))
    assert base.evaluate("d", CTX).value is True
    after = base.with_flag(flag("g").env("production", lambda e: e.off()).resolved())
    assert after._table["d"] is base._table["d"]
    assert after.evaluate("d", CTX).reason is Reason.PREREQUISITE_FAILED


def test_with_segment_recompiles_only_dependents() -> None:
    inner = segment("inner").include("user-1")
    outer = segment("outer").rule(segment_match("inner"))
    base = compile_snapshot(snapshot(
        [_seg_flag("uses-outer", "outer"), _seg_flag("uses-other", "other"), flag("plain").on()],  # type: ignore[list-item]
        [inner, outer, segment("other").include("x")],
    ))
    assert base.evaluate("uses-outer", CTX).value is True
    after = base.with_segment(segment("inner").include("someone-else").build())
    assert after.evaluate("uses-outer", CTX).value is False
    assert base.evaluate("uses-outer", CTX).value is True
    assert after._table["uses-outer"] is not base._table["uses-outer"]
    assert after._table["uses-other"] is base._table["uses-other"]
    assert after._table["plain"] is base._table["plain"]
    assert after._segment_fns["other"] is base._segment_fns["other"]
    removed = base.without_segment("inner")
    assert removed.evaluate("uses-outer", CTX).value is False  # a missing segment matches no one


def test_broken_segment_update_marks_dependents_parse_error_and_recovers() -> None:
    base = compile_snapshot(snapshot([_seg_flag("f", "s")], [segment("s").include("user-1")]))  # type: ignore[list-item]
    broken = base.with_segment({"key": "s", "included": "not-a-list"})
    assert broken.evaluate("f", CTX, "d").error_code is ErrorCode.PARSE_ERROR
    fixed = broken.with_segment(segment("s").include("user-1").build())
    assert fixed.evaluate("f", CTX).value is True


def test_with_version() -> None:
    base = compile_snapshot(snapshot([flag("a").on()], version=3))
    assert base.with_version(9).version == 9 and base.version == 3
    assert base.with_version(9).evaluate("a", CTX).value is True


def test_rule_conditions_all_anded() -> None:
    f = flag("f").env("production", lambda e: e.on()
                      .rule("r", cond("plan", "equals", "pro"), cond("age", "gt", 30),
                            cond("country", "in", "DE"), serve="true").fallthrough("false"))
    snap = compile_snapshot(snapshot([f]))
    assert snap.evaluate("f", {"plan": "pro", "age": 31, "country": "DE"}).value is True
    assert snap.evaluate("f", {"plan": "pro", "age": 31, "country": "FR"}).value is False
    assert snap.evaluate("f", {"plan": "pro", "age": 30, "country": "DE"}).value is False
