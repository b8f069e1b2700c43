"""Semantic versions: strict and lenient parsing, precedence keys, npm-style ranges.

A version becomes a *precedence key*, a tuple that compares exactly as SemVer 2.0.0 precedence
(build metadata ignored, ``1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0``, numeric
pre-release identifiers below alphanumeric ones), so the hot path compares tuples.

*Strict* is SemVer 2.0.0 exactly (python-semver parses it).  *Lenient* accepts what apps
send, normalised as LaunchDarkly's SDKs do: missing minor and patch are added as zeros
(``2`` -> ``2.0.0``, ``2.0-rc1`` -> ``2.0.0-rc1``); in addition a leading ``v`` or ``V`` is
dropped (``v2.0.0``), as npm does, which LaunchDarkly does not.

Ranges follow npm's ``semver`` package (desugared by the ``node-semver`` port when a flag is
compiled): ``^1.2.3`` := ``>=1.2.3 <2.0.0``, ``^0.2.3`` := ``>=0.2.3 <0.3.0``, ``^0.0.3`` :=
``>=0.0.3 <0.0.4``, ``~1.2.3`` := ``>=1.2.3 <1.3.0``, ``~1.2`` := ``>=1.2.0 <1.3.0``, ``~0.2`` :=
``>=0.2.0 <0.3.0``, ``~1`` := ``>=1.0.0 <2.0.0``, ``1.2.x``, ``1.2.3 - 2.3.4``, ``||``
alternatives and space-separated comparators (AND).  A pre-release version satisfies a
range only if some comparator of the matching alternative names a pre-release of the same
``major.minor.patch`` (``1.2.3-beta.4`` satisfies ``>=1.2.3-beta.2 <2.0.0``;
``1.2.4-beta`` does not satisfy ``^1.2.3``; ``2.0.0-rc.1`` does not satisfy ``<2.0.0``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import nodesemver
import semver

MAX_VERSION_LENGTH = 256
MAX_RANGE_LENGTH = 1024

Key = tuple[Any, ...]
_LEADING_NUMERIC = re.compile(r"^([0-9.]*)(.*)", re.DOTALL)


class VersionError(ValueError):
    """A version or range that cannot be parsed; the message says why."""


def _key(version: semver.Version) -> Key:
    pre = version.prerelease
    if pre is None:
        return (version.major, version.minor, version.patch, 1, ())
    parts = tuple((0, int(p)) if p.isdecimal() and p.isascii() else (1, p) for p in pre.split("."))
    return (version.major, version.minor, version.patch, 0, parts)


def _strict(text: str) -> Key | None:
    try:
        return _key(semver.Version.parse(text))
    except (ValueError, TypeError):
        return None


@lru_cache(maxsize=4096)
def _strict_cached(text: str) -> Key | None:
    return _strict(text)


def _add_zero_component(text: str) -> str:
    m = _LEADING_NUMERIC.match(text)
    assert m is not None  # the pattern matches every string
    return f"{m.group(1)}.0{m.group(2)}"


@lru_cache(maxsize=4096)
def _lenient_cached(text: str) -> Key | None:
    if text[:1] in ("v", "V"):
        text = text[1:]
    for _ in range(3):  # as given, then with one and two zero components added
        key = _strict(text)
        if key is not None:
            return key
        text = _add_zero_component(text)
    return None


def parse_version(value: object, *, lenient: bool = False) -> Key | None:
    """The precedence key of a version string, or ``None`` (not a string, too long, invalid)."""
    if not isinstance(value, str) or len(value) > MAX_VERSION_LENGTH:
        return None
    text = str(value)  # a str subclass would defeat the cache's equality
    return _lenient_cached(text) if lenient else _strict_cached(text)


def is_prerelease(key: Key) -> bool:
    return bool(key[3] == 0)


_COMPARE: dict[str, Callable[[Key, Key], bool]] = {
    "": operator.eq, "=": operator.eq, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}

# One alternative of a range: comparators that must all hold, and the major.minor.patch
# triples whose pre-releases it admits.
Alternative = tuple[tuple[tuple[Callable[[Key, Key], bool], Key], ...], frozenset[tuple[int, int, int]]]


def compile_range(text: object) -> tuple[Alternative, ...]:
    """An npm range as its alternatives; raises :class:`VersionError`."""
    if not isinstance(text, str) or not text.strip():
        raise VersionError("needs an npm-style range such as ^1.2.3, ~1.2, >=1.0.0 <2.0.0")
    if len(text) > MAX_RANGE_LENGTH:
        raise VersionError(f"a range is at most {MAX_RANGE_LENGTH} characters")
    if not text.isascii():
        raise VersionError("a range is ASCII")
    try:
        parsed = nodesemver.make_range(text, loose=False)
    except ValueError as exc:
        raise VersionError(f"invalid range {text!r}: {exc}") from None
    alternatives = []
    for comparators in parsed.set:
        checks = []
        admits = set()
        for comparator in comparators:
            if comparator.semver is nodesemver.ANY:
                continue  # "*": any release
            bound = _strict(str(comparator.semver))
            if bound is None:  # pragma: no cover - the port only yields valid versions
                raise VersionError(f"invalid range {text!r}")
            checks.append((_COMPARE[comparator.operator or ""], bound))
            if is_prerelease(bound):
                admits.add(bound[:3])
        alternatives.append((tuple(checks), frozenset(admits)))
    return tuple(alternatives)


def in_range(key: Key, alternatives: tuple[Alternative, ...]) -> bool:
    for checks, admits in alternatives:
        for compare, bound in checks:
            if not compare(key, bound):  # a tuple comparison
                break
        else:
            if key[3] == 1 or key[:3] in admits:
                return True
    return False
