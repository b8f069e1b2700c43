"""Parsing of typed operand values shared by validation and compilation.

Dates, semantic versions and numbers are parsed here once, so that validation refuses exactly
what compilation could not use and the hot path only compares already-parsed values.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache

import re2
import semver

_RE2_OPTIONS = re2.Options()
# A bad pattern is reported to the caller as a DefinitionError; RE2's own stderr log is noise.
_RE2_OPTIONS.log_errors = False


def compile_regex(pattern: str) -> re2._Regexp:
    """Compile with RE2 (linear time, no catastrophic backtracking); raises ``re2.error``."""
    return re2.compile(pattern, _RE2_OPTIONS)


def is_number(value: object) -> bool:
    """int or float, not bool, finite: the only values numeric operators accept."""
    cls = value.__class__
    if cls is int:
        return True
    if cls is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_instant(value: object) -> float | None:
    """An ISO-8601 string or epoch seconds (int/float) as epoch seconds; ``None`` if neither.

    A date or datetime without an offset is taken as UTC so that the answer does not depend
    on the machine's time zone.
    """
    if isinstance(value, str):
        if len(value) > 64:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if is_number(value):
        return float(value)  # type: ignore[arg-type]
    return None


@lru_cache(maxsize=4096)
def _parse_semver_cached(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def parse_semver(value: object) -> semver.Version | None:
    """A SemVer 2.0.0 string (no leading ``v``, no coercion) or ``None``.

    Parsed versions are cached because the same few app versions are evaluated again and
    again and parsing costs far more than comparing.
    """
    if not isinstance(value, str) or len(value) > 256:
        return None
    return _parse_semver_cached(value)
