"""String operators: ignore_case, many operands in one pass, the text-length cap."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagstaff.engine import Reason, compile_snapshot
from flagstaff.engine.texts import FEW, MAX_TEXT_LENGTH, PrefixSet, Substrings, text_pred
from tests.builders import cond, flag, snapshot


def ci(attribute: str, operator: str, *values: Any, negate: bool = False) -> dict[str, Any]:
    return {**cond(attribute, operator, *values, negate=negate), "ignore_case": True}


def matches(condition: dict[str, Any], value: Any) -> bool:
    f = flag("f").env("production", lambda e: e.on().rule("r", condition, serve="true").fallthrough("false"))
    detail = compile_snapshot(snapshot([f])).evaluate("f", {"key": "u", "a": value}, None)
    assert detail.reason in (Reason.RULE_MATCH, Reason.FALLTHROUGH), detail
    return detail.reason is Reason.RULE_MATCH


IGNORE_CASE: list[tuple[dict[str, Any], Any, bool]] = [
    (ci("a", "equals", "Admin"), "ADMIN", True),
    (ci("a", "equals", "Admin"), "admins", False),
    (ci("a", "equals", "STRASSE"), "Straße", True),  # full case folding: ß -> ss
    (ci("a", "equals", "ﬁle"), "FILE", True),  # the ligature folds to "fi"
    (ci("a", "equals", "ΣΊΣΥΦΟΣ"), "σίσυφος", True),  # final sigma folds like sigma
    (ci("a", "equals", "é"), "e\u0301", False),  # no normalisation: composed != decomposed
    (ci("a", "equals", 1), 1, True),  # non-strings compare as usual
    (ci("a", "not_equals", "x"), "X", False),
    (ci("a", "not_equals", "x"), "y", True),
    (ci("a", "not_equals", "x"), 3, False),  # wrong type: neither twin matches
    (ci("a", "in", "DE", "FR"), "de", True),
    (ci("a", "in", "DE", 7, True), "fr", False),
    (ci("a", "in", "DE", 7, True), 7, True),
    (ci("a", "in", "DE"), ["x", "De"], True),  # list attribute: any element
    (ci("a", "not_in", "DE", "FR"), "Fr", False),
    (ci("a", "not_in", "DE", "FR"), "it", True),
    (ci("a", "in", "de"), "x" * 5000, False),  # longer than any folded operand: not folded
    (ci("a", "contains", "BETA"), "closed-beta-2", True),
    (ci("a", "not_contains", "BETA"), "closed-Beta-2", False),
    (ci("a", "starts_with", "Mozilla/"), "mozilla/5.0", True),
    (ci("a", "starts_with", "STRASSE"), "Straße 1", True),
    (ci("a", "ends_with", "@ACME.com"), "bob@acme.COM", True),
    (ci("a", "ends_with", "@acme.com"), "bob@acme.co", False),
    (ci("a", "ends_with", "SS"), "Fuß", True),  # the folded value ends with "ss"
    (ci("a", "regex", r"^user-\d+$"), "USER-42", True),
    (cond("a", "regex", r"^user-\d+$"), "USER-42", False),
    (cond("a", "equals", "Admin"), "ADMIN", False),  # without the option: exact
]


@pytest.mark.parametrize(("condition", "value", "expected"), IGNORE_CASE)
def test_ignore_case(condition: dict[str, Any], value: Any, expected: bool) -> None:
    assert matches(condition, value) is expected


def test_ignore_case_rules_are_not_merged_into_an_exact_index() -> None:
    # Consecutive `in` rules are indexed into one exact lookup; a case-insensitive one must not be.
    f = flag("f").env("production", lambda e: e.on()
                      .rule("exact", cond("country", "in", "DE"), serve="true")
                      .rule("folded", ci("country", "in", "FR"), serve="true")
                      .fallthrough("false"))
    snap = compile_snapshot(snapshot([f]))
    assert snap.evaluate("f", {"key": "u", "country": "fr"}).rule_id == "folded"
    assert snap.evaluate("f", {"key": "u", "country": "de"}).value is False


MANY = [f"op-{i:05d}-" + "x" * (i % 7) for i in range(FEW * 40)]


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("contains", "...op-00123-xxxx...", True),
        ("contains", "...op-0012...", False),
        ("starts_with", "op-00200-xxxxxtail", True),
        ("starts_with", "op-00200-xxx", False),  # shorter than the operand
        ("ends_with", "head-op-00311-xxx", True),
        ("ends_with", "head-op-00311-xx", False),
        ("not_contains", "nothing here", True),
        ("contains", 42, False),
    ],
)
def test_many_operands(operator: str, value: Any, expected: bool) -> None:
    assert matches(cond("a", operator, *MANY), value) is expected


def test_empty_operands_match_every_string() -> None:
    for operator in ("contains", "starts_with", "ends_with"):
        assert matches(cond("a", operator, "", *MANY), "anything")
        assert matches(ci("a", operator, "", "X"), "anything")
        assert not matches(cond("a", operator, ""), 5)


def test_text_over_the_cap_is_not_compared() -> None:
    at_cap = "a" * (MAX_TEXT_LENGTH - 6) + "needle"
    over = at_cap + "!"
    for operands in (("needle",), (*MANY, "needle")):
        assert matches(cond("a", "contains", *operands), at_cap)
        assert not matches(cond("a", "contains", *operands), over)
        assert not matches(cond("a", "not_contains", *operands), over)  # incomparable, not "absent"
    assert matches(cond("a", "regex", "needle$"), at_cap)
    assert not matches(cond("a", "regex", "needle$"), over)
    # Prefixes, suffixes and equality look no further than the operands: no cap.
    assert matches(cond("a", "starts_with", "aaa"), over)
    assert matches(ci("a", "ends_with", "NEEDLE!"), over)
    assert matches(cond("a", "not_equals", "x"), over)


def test_several_regexes_are_one_program() -> None:
    pred = text_pred("regex", [r"^a\d$", r"b{2}", r"(c|d)$"], False)
    assert [pred(v) for v in ("a1", "xbbx", "zd", "zz", 3)] == [True, True, True, False, None]


class CountingText(str):
    """A value that counts the operand comparisons made on it (Python-visible ones)."""

    calls = 0

    def __contains__(self, needle: object) -> bool:
        CountingText.calls += 1
        return super().__contains__(needle)  # type: ignore[operator]

    def startswith(self, prefix: Any, *args: Any) -> bool:
        CountingText.calls += len(prefix) if isinstance(prefix, tuple) else 1
        return super().startswith(prefix, *args)

    def endswith(self, suffix: Any, *args: Any) -> bool:
        CountingText.calls += len(suffix) if isinstance(suffix, tuple) else 1
        return super().endswith(suffix, *args)

    def __lt__(self, other: str) -> bool:
        CountingText.calls += 1
        return super().__lt__(other)

    def __gt__(self, other: str) -> bool:
        CountingText.calls += 1
        return super().__gt__(other)


@pytest.mark.parametrize("operator", ["contains", "starts_with", "ends_with"])
@pytest.mark.parametrize("ignore_case", [False, True])
def test_ten_thousand_operands_cost_one_pass_not_ten_thousand(operator: str, ignore_case: bool) -> None:
    # The CPU bomb: 10,000 operands of 100 characters against a long value.  Checking operands
    # one by one makes 10,000 comparisons per evaluation; the compiled forms make one scan
    # (contains) or a bisection of ~log2(10,000) comparisons (starts/ends_with).
    operands = [f"{i:05d}" + "q" * 95 for i in range(10_000)]
    condition = (ci if ignore_case else cond)("a", operator, *operands)
    value = CountingText("z" * 6000)
    CountingText.calls = 0
    assert matches(condition, value) is False
    assert CountingText.calls <= math.ceil(math.log2(len(operands))) + 2


def test_compiled_forms() -> None:
    # contains: one automaton over all operands; starts_with: a prefix-free sorted list.
    automaton = Substrings(["abc", "bcd", "abc"])
    assert automaton("xxbcdxx") and not automaton("xxbcxx")
    prefixes = PrefixSet(["ab", "abc", "abd", "b", "ba"])
    assert prefixes.prefixes == ["ab", "b"]  # "abc", "abd", "ba" add no match
    assert prefixes("abz") and prefixes("bz") and not prefixes("a") and not prefixes("c")


words = st.text(alphabet="abAB", max_size=4)


@settings(max_examples=300, deadline=None)
@given(operands=st.lists(words, min_size=1, max_size=FEW * 3), values=st.lists(st.text(alphabet="abAB", max_size=8), max_size=6),
       operator=st.sampled_from(["contains", "starts_with", "ends_with"]), ignore_case=st.booleans())
def test_compiled_forms_agree_with_checking_each_operand(
    operands: list[str], values: list[str], operator: str, ignore_case: bool
) -> None:
    pred = text_pred(operator, operands, ignore_case)
    for value in values:
        norm = (lambda s: s.casefold()) if ignore_case else (lambda s: s)
        v = norm(value)
        check = {"contains": lambda o, v=v: o in v, "starts_with": v.startswith, "ends_with": v.endswith}[operator]
        assert pred(value) is any(check(norm(o)) for o in operands), (operands, value)
