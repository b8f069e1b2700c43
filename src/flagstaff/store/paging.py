"""Opaque pagination cursors: base64url of a small JSON position, validated on the way in."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flagstaff.errors import Invalid

MAX_LIMIT = 500


def encode_cursor(position: Any) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, expected: type) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise Invalid("cursor is not valid", details={"field": "cursor"}) from exc
    if not isinstance(value, expected) or isinstance(value, bool):
        raise Invalid("cursor is not valid", details={"field": "cursor"})
    return value


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit must be between 1 and {MAX_LIMIT}", details={"field": "limit"})
    return limit
