"""Parsing of typed operand values shared by validation and compilation: numbers and regexes.

Values are parsed here (and in ``instants``, ``versions``, ``networks``) once, so that
validation refuses exactly what compilation could not use and the hot path only compares
already-parsed values.
"""

from __future__ import annotations

import math

import re2


def _re2_options(*, case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    # A bad pattern is reported to the caller as a DefinitionError; RE2's own stderr log is noise.
    options.log_errors = False
    options.case_sensitive = case_sensitive
    return options


_RE2_OPTIONS = _re2_options(case_sensitive=True)
_RE2_IGNORE_CASE = _re2_options(case_sensitive=False)


def compile_regex(pattern: str, *, ignore_case: bool = False) -> re2._Regexp:
    """Compile with RE2 (linear time, no catastrophic backtracking); raises ``re2.error``."""
    return re2.compile(pattern, _RE2_IGNORE_CASE if ignore_case else _RE2_OPTIONS)


def is_number(value: object) -> bool:
    """int or float, not bool, finite: the only values numeric operators accept."""
    cls = value.__class__
    if cls is int:
        return True
    if cls is float:
        return math.isfinite(value)  # type: ignore[arg-type]
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
