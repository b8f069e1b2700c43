"""Flag lifecycle: ``GET /flags?state=stale``.

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
from flagstaff.store.flag_order import page_in_memory, parse_order
from flagstaff.store.lifecycle import StaleFlag
from flagstaff.store.paging import check_limit


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


def stale_page(request: Request, *, limit: int, cursor: str | None, sort: str | None = None) -> dict[str, Any]:
    """Stale flags in ``sort`` order (key by default), each with ``stale_reason`` and
    ``last_evaluated_at``."""
    check_limit(limit)
    page, next_cursor = page_in_memory(
        parse_order(sort), find_stale(request), _definition, limit=limit, cursor=cursor
    )
    return {"items": [f.to_dict() for f in page], "next_cursor": next_cursor}


def _definition(flag: StaleFlag) -> dict[str, Any]:
    return flag.record.definition
