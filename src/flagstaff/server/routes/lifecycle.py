"""Flag lifecycle: ``GET /flags?state=stale`` (issue 6 §8).

Not a router of its own: ``state=stale`` is a view of ``GET /flags``, which delegates here.
The thresholds per flag kind come from the settings (``FLAGSTAFF_STALE_*_DAYS``); the clock is
``app.state.clock`` when a test sets one, else the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

from fastapi import Request

from flagstaff.server.deps import get_settings, get_store
from flagstaff.store.lifecycle import StaleFlag
from flagstaff.store.paging import check_limit, decode_cursor, encode_cursor


def _now(request: Request) -> datetime:
    clock = getattr(request.app.state, "clock", None)
    if clock is None:
        return datetime.now(UTC)
    return cast(Callable[[], datetime], clock)()


def find_stale(request: Request) -> list[StaleFlag]:
    """Every stale flag, ordered by key, by the server's thresholds and clock (also used by
    the console's flag list)."""
    return get_store(request).stale_flags(
        now=_now(request), thresholds=get_settings(request).stale_thresholds
    )


def stale_page(request: Request, *, limit: int, cursor: str | None) -> dict[str, Any]:
    """Stale flags ordered by key, each with ``stale_reason`` and ``last_evaluated_at``."""
    check_limit(limit)
    after = None if cursor is None else decode_cursor(cursor, expected=str)
    found = find_stale(request)
    items = [f for f in found if after is None or f.record.key > after]
    page = items[:limit]
    more = len(items) > limit
    return {
        "items": [f.to_dict() for f in page],
        "next_cursor": encode_cursor(page[-1].record.key) if more and page else None,
    }
