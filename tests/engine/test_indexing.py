"""Merged membership rules answer exactly as the same rules checked one by one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flagstaff.engine import EvaluationDetail, Reason, compile_snapshot
from tests.builders import EnvBuilder, FlagBuilder, cond, flag, rollout, snapshot

# A second condition met whenever the first can be: the rule keeps its meaning but is no
# longer a one-condition membership rule, so it is compiled and checked on its own.
_UNMERGED = cond("country", "exists")

CONTEXTS: list[dict[str, Any]] = [
    {"key": f"u{i}", "country": country}
    for i, country in enumerate(
        ["DE", "FR", "IT", "ES", "PT", "", ["PT", "IT", "DE"], ["XX"], [], 7, True, None,
         ("ES", "FR"), {"DE": 1}]
    )
] + [{"key": "u-missing"}, {"key": 12, "country": "IT"}, {"country": "FR"}]


class _Str(str):
    pass


CONTEXTS.append({"key": "u-sub", "country": _Str("FR")})


def _flag(merged: bool, fallthrough: Callable[[EnvBuilder], EnvBuilder]) -> FlagBuilder:
    extra = () if merged else (_UNMERGED,)

    def configure(e: EnvBuilder) -> EnvBuilder:
        e.on()
        e.rule("r0", cond("country", "in", "DE", "FR"), *extra, serve="a")
        e.rule("r1", cond("country", "in", "FR", "IT"), *extra, serve=rollout(a=50, b=50))
        e.rule("r2", cond("country", "equals", "ES"), *extra, serve="c")
        return fallthrough(e)

    return flag("f").json({"a": {"v": "A"}, "b": ["B"], "c": None}, off="c").env("production", configure)


FALLTHROUGHS: list[Callable[[EnvBuilder], EnvBuilder]] = [
    lambda e: e.fallthrough("b"),
    lambda e: e.fallthrough(None),
    lambda e: e.fallthrough_rollout(a=30, b=70),
    lambda e: e.fallthrough_rollout(a=50, b=50).experiment({"a": 50, "b": 50}, status="running"),
]


@pytest.mark.parametrize("fallthrough", FALLTHROUGHS)
def test_merged_rules_answer_as_rules_checked_in_order(
    fallthrough: Callable[[EnvBuilder], EnvBuilder],
) -> None:
    merged = compile_snapshot(snapshot([_flag(True, fallthrough)]))
    unmerged = compile_snapshot(snapshot([_flag(False, fallthrough)]))
    for ctx in CONTEXTS:
        # Twice: the first match of a fixed rule builds its detail, later ones reuse it.
        for _ in range(2):
            assert merged.evaluate("f", ctx) == unmerged.evaluate("f", ctx), ctx


def test_rule_detail_is_built_once_with_every_field() -> None:
    f = flag("f").env("production", lambda e: e.on()
                      .rule("r0", cond("country", "in", "DE"), serve="true")
                      .rule("r1", cond("country", "in", "FR"), serve="false")
                      .fallthrough_rollout(true=50, false=50))
    snap = compile_snapshot(snapshot([f], version=3))
    first, again = (snap.evaluate("f", {"key": k, "country": "FR"}) for k in ("u1", "u2"))
    assert first is again
    assert first == EvaluationDetail(
        False, "false", Reason.RULE_MATCH, rule_id="r1", rule_index=1, flag_key="f", version=1
    )

