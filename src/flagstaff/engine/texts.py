"""String operators compiled so that one evaluation costs at most one pass over the value.

A condition may hold 10,000 operands; checking them one by one against a long attribute is a
CPU bomb (10,000 ``in`` scans of a 65,536-character value took 356 ms).  So, at compile time:

* ``contains`` with more than :data:`FEW` operands becomes one Aho-Corasick automaton
  (``ahocorasick-rs``): a single scan of the value whatever the number of operands.  Up to
  :data:`FEW` operands, CPython's own substring search (a C loop per operand) is faster.
* ``starts_with`` keeps its operands sorted with every operand that extends another one
  dropped ("prefix-free"): then the only operand that can be a prefix of the value is the
  greatest one not above it, found by bisection, so a match costs ``log2(n)`` comparisons
  of at most the longest operand's length.  ``ends_with`` is the same on reversed strings.
* ``regex`` operands become one RE2 alternation (a single scan), when RE2 can compile it.

``ignore_case`` compares after Unicode full case folding (``str.casefold``: ``"Straße"`` and
``"STRASSE"`` are equal, as are ``"ﬁ"`` and ``"fi"``), with no other normalisation (composed
and decomposed accents differ).  For ``regex`` it is RE2's case-insensitive mode, which uses
simple case folding (``ß`` does not match ``ss`` there).

Values longer than :data:`MAX_TEXT_LENGTH` characters are not scanned by ``contains``,
``not_contains`` and ``regex``: they are *incomparable* (neither the operator nor its
``not_`` twin matches), which bounds the work of one evaluation.  Prefix, suffix and equality
checks never look further than the longest operand, so they need no cap.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import ahocorasick_rs

from flagstaff.engine.values import compile_regex

MAX_TEXT_LENGTH = 8192
FEW = 8

Pred = Callable[[Any], "bool | None"]


def fold(text: str) -> str:
    return text.casefold()


def _prefix_free(values: list[str]) -> list[str]:
    """Sorted, without any value that has another value as a prefix (it adds no match)."""
    out: list[str] = []
    for value in sorted(set(values)):
        if not (out and value.startswith(out[-1])):
            out.append(value)
    return out


class PrefixSet:
    """Is any of many strings a prefix of a value: one bisection over a prefix-free list.

    After dropping operands that extend another, any operand that is a prefix of ``v`` is the
    greatest operand ``<= v``: an operand between that prefix and ``v`` would start with it.
    """

    __slots__ = ("longest", "prefixes")

    def __init__(self, values: list[str]) -> None:
        self.prefixes = _prefix_free(values)
        self.longest = max((len(p) for p in self.prefixes), default=0)

    def __call__(self, v: str) -> bool:
        prefixes = self.prefixes
        i = bisect_right(prefixes, v)
        return i > 0 and v.startswith(prefixes[i - 1])


class Substrings:
    """Does any of many strings occur in a value: one Aho-Corasick scan."""

    __slots__ = ("automaton",)

    def __init__(self, values: list[str]) -> None:
        self.automaton = ahocorasick_rs.AhoCorasick(sorted(set(values)))

    def __call__(self, v: str) -> bool:
        return bool(self.automaton.find_matches_as_indexes(v))


def _contains(values: list[str], folded: bool) -> Pred:
    cap = MAX_TEXT_LENGTH
    if "" in values:  # every string contains ""
        return lambda v: (len(v) <= cap or None) if isinstance(v, str) else None
    if len(set(values)) > FEW:
        found: Callable[[str], bool] = Substrings(values)
    else:
        needles = tuple(set(values))

        def found(v: str) -> bool:
            for needle in needles:  # noqa: SIM110 - a loop is cheaper than any() over a generator
                if needle in v:
                    return True
            return False

    if folded:
        return lambda v: (found(v.casefold()) if len(v) <= cap else None) if isinstance(v, str) else None
    return lambda v: (found(v) if len(v) <= cap else None) if isinstance(v, str) else None


def _starts_with(values: list[str], folded: bool) -> Pred:
    if len(values) <= FEW and not folded:
        prefixes = tuple(values)
        return lambda v: v.startswith(prefixes) if isinstance(v, str) else None
    index = PrefixSet(values)
    if not folded:
        return lambda v: index(v) if isinstance(v, str) else None
    # Folding never shortens a string, so folding the value's first ``longest`` characters
    # yields at least ``longest`` folded characters: enough to see any folded operand.
    longest = index.longest
    return lambda v: index(v[:longest].casefold()) if isinstance(v, str) else None


def _ends_with(values: list[str], folded: bool) -> Pred:
    if len(values) <= FEW and not folded:
        suffixes = tuple(values)
        return lambda v: v.endswith(suffixes) if isinstance(v, str) else None
    index = PrefixSet([value[::-1] for value in values])
    longest = index.longest
    if not folded:
        return lambda v: index(v[: -longest - 1 : -1]) if isinstance(v, str) else None
    return lambda v: index(v[-longest:].casefold()[::-1]) if isinstance(v, str) else None


def _regex(values: list[str], folded: bool) -> Pred:
    cap = MAX_TEXT_LENGTH
    patterns = list(dict.fromkeys(values))
    search: Callable[[str], Any]
    try:
        search = compile_regex("|".join(f"(?:{p})" for p in patterns), ignore_case=folded).search
    except Exception:  # RE2 refuses a program over its memory budget
        # Each operand compiles alone (validation checked it): one scan per operand.
        regexes = tuple(compile_regex(p, ignore_case=folded) for p in patterns)

        def search(v: str) -> bool:
            return any(r.search(v) for r in regexes)

    def pred(v: Any) -> bool | None:
        if not isinstance(v, str) or len(v) > cap:
            return None
        found = search(v)
        return found is not None and found is not False

    return pred


def text_pred(op: str, values: list[str], ignore_case: bool) -> Pred:
    """The predicate of ``contains``/``starts_with``/``ends_with``/``regex`` (positive form)."""
    if op == "regex":
        return _regex(values, ignore_case)
    operands = [fold(v) for v in values] if ignore_case else list(values)
    if "" in operands and op != "contains":  # every string starts and ends with ""
        return lambda v: True if isinstance(v, str) else None
    if op == "starts_with":
        return _starts_with(operands, ignore_case)
    if op == "ends_with":
        return _ends_with(operands, ignore_case)
    return _contains(operands, ignore_case)
