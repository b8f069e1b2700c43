"""Prerequisites satisfied by any of several variants, or by the parent being off."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, validate_flag
from tests.builders import flag, snapshot


def parent(enabled: bool = True, serve: str = "blue") -> Any:
    return flag("parent").string({"blue": "b", "green": "g", "red": "r"}, off="red").env(
        "production", lambda e: (e.on() if enabled else e.off()).fallthrough(serve))


def child(*prerequisites: dict[str, Any]) -> Any:
    return flag("child").env("production", lambda e: e.on().prerequisites(*prerequisites).fallthrough("true"))


def answer(parent_flag: Any, *prerequisites: dict[str, Any]) -> Any:
    flags = [child(*prerequisites)] + ([parent_flag] if parent_flag is not None else [])
    return compile_snapshot(snapshot(flags)).evaluate("child", {"key": "u"})


@pytest.mark.parametrize(
    ("served", "passes"), [("blue", True), ("green", True), ("red", False)],
)
def test_any_of_several_variants(served: str, passes: bool) -> None:
    detail = answer(parent(serve=served), {"flag": "parent", "variants": ["blue", "green"]})
    assert detail.value is passes
    assert detail.reason is (Reason.FALLTHROUGH if passes else Reason.PREREQUISITE_FAILED)


def test_any_of_never_passes_on_a_disabled_parent_even_for_its_off_variant() -> None:
    detail = answer(parent(enabled=False), {"flag": "parent", "variants": ["red", "blue"]})
    assert (detail.value, detail.prerequisite_key) == (False, "parent")


def test_parent_must_be_off() -> None:
    assert answer(parent(enabled=False), {"flag": "parent", "off": True}).value is True
    on = answer(parent(enabled=True, serve="red"), {"flag": "parent", "off": True})
    assert (on.value, on.reason, on.prerequisite_key) == (False, Reason.PREREQUISITE_FAILED, "parent")
    assert answer(None, {"flag": "parent", "off": True}).value is False  # a missing parent is not "off"


def test_off_means_disabled_not_failing_its_own_prerequisite() -> None:
    grandparent = flag("grand").env("production", lambda e: e.off())
    failing_parent = parent().build()
    failing_parent["environments"]["production"]["prerequisites"] = [{"flag": "grand", "variant": "true"}]
    snap = compile_snapshot(snapshot([grandparent, failing_parent, child({"flag": "parent", "off": True})]))
    assert snap.evaluate("parent", {"key": "u"}).reason is Reason.PREREQUISITE_FAILED
    assert snap.evaluate("child", {"key": "u"}).value is False


def test_forms_combine_in_order() -> None:
    snap = compile_snapshot(snapshot([
        parent(serve="green"),
        flag("maintenance").env("production", lambda e: e.off()),
        flag("child").env("production", lambda e: e.on().prerequisite_any("parent", "green")
                          .prerequisite_off("maintenance").fallthrough("true")),
    ]))
    assert snap.evaluate("child", {"key": "u"}).value is True


@pytest.mark.parametrize(
    ("prerequisite", "path", "fragment"),
    [
        ({"flag": "parent"}, "prerequisites[0]", "exactly one"),
        ({"flag": "parent", "variant": "blue", "off": True}, "prerequisites[0]", "exactly one"),
        ({"flag": "parent", "variant": "blue", "variants": ["green"]}, "prerequisites[0]", "exactly one"),
        ({"flag": "parent", "variants": []}, "prerequisites[0].variants", "empty"),
        ({"flag": "parent", "variants": ["blue", "blue"]}, "prerequisites[0].variants", "twice"),
        ({"flag": "parent", "variants": ["no space"]}, "prerequisites[0].variants[0]", "variant key"),
        ({"flag": "parent", "off": "yes"}, "prerequisites[0].off", "boolean"),
        ({"flag": "parent", "off": False}, "prerequisites[0]", "exactly one"),
        ({"flag": "parent", "state": "off"}, "prerequisites[0].state", "unknown field"),
    ],
)
def test_invalid_prerequisites(prerequisite: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        validate_flag(child(prerequisite).build())
    assert info.value.path == f"environments.production.{path}"
    assert fragment in info.value.message


def test_normalised_forms() -> None:
    env = validate_flag(child(
        {"flag": "a", "variant": "x"}, {"flag": "b", "variants": ["x", "y"]},
        {"flag": "c", "off": True}, {"flag": "d", "variant": "x", "off": False},
    ).build())["environments"]["production"]
    assert env["prerequisites"] == [
        {"flag": "a", "variant": "x"}, {"flag": "b", "variants": ["x", "y"]},
        {"flag": "c", "off": True}, {"flag": "d", "variant": "x"},
    ]
