"""Instants and time windows: the strict date-time syntax and the evaluation-time operands.

Only RFC 3339 date-times (and ISO-8601's extended calendar forms that RFC 3339 profiles: a
date alone, minutes without seconds) are accepted, with ASCII digits only: ``2024-01-01``,
``2024-01-01T10:00Z``, ``2024-01-01 10:00:00.5+02:00``.  Python's ``datetime.fromisoformat``
alone is too loose for a contract (it takes any separator character, ``2017-12-06X00:00``, and
ISO week dates), so the shape is checked by a regular expression first.

Everything is turned into epoch seconds when a flag is compiled; the hot path compares floats.
A value without an offset is UTC, or local time in the condition's ``timezone`` (an IANA name):
a local time that does not exist there (inside a DST gap) or exists twice (a DST overlap) is
refused, because either choice would silently move the boundary by an hour.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_INSTANT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,9}))?)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})?)?"
)
MAX_INSTANT_LENGTH = 64
# An IANA name such as "America/Argentina/Buenos_Aires" or "Etc/GMT+5".
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+){0,3}")


class InstantError(ValueError):
    """A date-time or window that cannot be used; the message says why."""


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; raises :class:`InstantError` if unknown."""
    if not isinstance(name, str) or len(name) > 64 or not _ZONE_NAME.fullmatch(name):
        raise InstantError(f"invalid time zone {name!r} (an IANA name such as Europe/Berlin)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InstantError(f"unknown time zone {name!r}") from None


def _offset(text: str) -> tzinfo:
    if text in ("Z", "z"):
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        raise InstantError(f"invalid offset {text!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def _local(naive: datetime, tz: tzinfo, text: str) -> datetime:
    """``naive`` read in ``tz``, refusing times that a DST change skips or repeats."""
    first = naive.replace(tzinfo=tz, fold=0)
    second = naive.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        # fold only matters at a transition: a gap (the wall time never happens) or an
        # overlap (it happens twice).  Round-tripping through UTC tells which.
        back = first.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        if back != naive:
            raise InstantError(f"{text} does not exist in {tz} (the clocks skip it); give an offset")
        raise InstantError(f"{text} happens twice in {tz} (the clocks go back); give an offset")
    return first


def parse_datetime(text: str, tz: tzinfo | None = None) -> datetime:
    """A strict RFC 3339 / ISO-8601 date-time as an aware datetime; raises :class:`InstantError`."""
    if len(text) > MAX_INSTANT_LENGTH:
        raise InstantError("a date-time is at most 64 characters")
    m = _INSTANT.fullmatch(text)
    if m is None:
        raise InstantError(
            f"{text!r} is not an RFC 3339 date-time such as 2024-01-01T10:00:00Z or a date 2024-01-01"
        )
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    micro = int((fraction or "0").ljust(6, "0")[:6])
    try:
        naive = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                         int(second or 0), micro)
    except ValueError as exc:
        raise InstantError(f"{text!r}: {exc}") from None
    if offset is not None:
        return naive.replace(tzinfo=_offset(offset))
    if tz is None:
        return naive.replace(tzinfo=UTC)
    return _local(naive, tz, text)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> float | None:
    try:
        return parse_datetime(text).timestamp()
    except InstantError:
        return None


def parse_instant(value: object) -> float | None:
    """An RFC 3339 string or epoch seconds (int/float) as epoch seconds; ``None`` if neither.

    Strings are cached: the same few timestamps are evaluated again and again.
    """
    if isinstance(value, str):
        if len(value) > MAX_INSTANT_LENGTH:
            return None
        return _parse_cached(str(value))
    cls = value.__class__
    if cls is int or cls is float or (isinstance(value, int | float) and not isinstance(value, bool)):
        number = float(value)  # type: ignore[arg-type]
        return number if math.isfinite(number) else None
    return None


def operand_instant(value: object, tz: tzinfo | None) -> float:
    """A condition operand as epoch seconds (naive values in ``tz``); raises :class:`InstantError`."""
    if isinstance(value, str):
        return parse_datetime(value, tz).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InstantError("needs an RFC 3339 date-time or epoch seconds")


def operand_window(value: object, tz: tzinfo | None) -> tuple[float, float]:
    """An ISO-8601 interval ``"start/end"`` as ``(start, end)`` epoch seconds, start < end."""
    if not isinstance(value, str) or value.count("/") != 1:
        raise InstantError(
            "a window is an ISO-8601 interval \"start/end\", e.g. "
            "\"2025-03-01T09:00:00Z/2025-03-08T17:00:00Z\""
        )
    start_text, end_text = value.split("/")
    start = parse_datetime(start_text, tz).timestamp()
    end = parse_datetime(end_text, tz).timestamp()
    if not start < end:
        raise InstantError(f"the window {value!r} ends before it starts")
    return start, end


def merge_windows(windows: list[tuple[float, float]]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Sorted, non-overlapping ``(starts, ends)`` covering the same instants, for bisection."""
    merged: list[list[float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple(w[0] for w in merged), tuple(w[1] for w in merged)
