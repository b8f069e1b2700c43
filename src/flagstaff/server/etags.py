"""ETag and precondition headers: versions as strong ETags, ``If-Match``/``If-None-Match``."""

from __future__ import annotations

import re

from flagstaff.errors import Invalid

_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,18})"?\s*$')


def etag(version: int) -> str:
    return f'"{version}"'


def parse_if_match(header: str | None) -> int | None:
    """The version a write expects, or None when any version will do (absent or ``*``).

    Accepts ``"3"``, ``W/"3"`` and a bare ``3`` (clients often drop the quotes); anything else
    is a 400 naming the header rather than a silent unconditional write.
    """
    if header is None or header.strip() == "*":
        return None
    match = _ETAG.match(header)
    if match is None:
        raise Invalid(
            f'If-Match must be a version ETag such as "3" (got {header!r})',
            details={"field": "If-Match"},
        )
    return int(match.group(1))


def none_match(header: str | None, current: str) -> bool:
    """True when ``If-None-Match`` already names ``current`` (answer 304)."""
    if header is None:
        return False
    if header == current:
        return True  # the usual: the tag of the last answer, sent back as it came
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or current in tags
