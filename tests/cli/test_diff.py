from __future__ import annotations

from flagstaff.cli.diff import diff, render


def test_diff_reports_paths_of_changes() -> None:
    old = {"enabled": True, "rules": [{"id": "a", "values": [1]}], "gone": 1, "n": 1}
    new = {"enabled": False, "rules": [{"id": "a", "values": [2]}], "added": "x", "n": 1.0}
    assert diff(old, new) == [
        {"path": "gone", "op": "remove", "old": 1, "new": None},
        {"path": "enabled", "op": "replace", "old": True, "new": False},
        {"path": "rules[0].values[0]", "op": "replace", "old": 1, "new": 2},
        {"path": "added", "op": "add", "old": None, "new": "x"},
    ]


def test_bool_and_int_are_different_values() -> None:
    assert diff({"v": 1}, {"v": True}) == [{"path": "v", "op": "replace", "old": 1, "new": True}]
    assert diff([1, 2], [1, 2, 3]) == [
        {"path": "", "op": "replace", "old": [1, 2], "new": [1, 2, 3]}
    ]


def test_render_escapes_markup_and_marks_each_op() -> None:
    lines = render(
        [
            {"path": "a", "op": "add", "new": ["x"]},
            {"path": "b", "op": "remove", "old": 1},
            {"path": "c", "op": "replace", "old": True, "new": False},
        ]
    )
    assert lines[0].startswith("    [green]+ a: \\[")
    assert "- b: 1" in lines[1]
    assert "~ c: true -> false" in lines[2]
