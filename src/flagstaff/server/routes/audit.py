"""The audit log across all targets, with filters (oldest or newest first, cursor-paginated)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from flagstaff.server.auth import Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.models import IsoDateTime, PageOut
from flagstaff.store import Store

router = APIRouter(tags=["audit"])


def audit_page(store: Store, **filters: Any) -> dict[str, Any]:
    page = store.list_audit(**filters)
    return {"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor}


@router.get(
    "/audit", summary="Audit records, oldest first (order=newest: newest first)",
    response_model=PageOut,
    responses=error_responses(400, 401, 403),
)
def list_audit(
    _: Viewer,
    store: Annotated[Store, Depends(get_store)],
    key: Annotated[str | None, Query(max_length=128, description="target key")] = None,
    kind: Annotated[
        str | None, Query(pattern="^(flag|segment|environment|token)$", description="target kind")
    ] = None,
    actor: Annotated[str | None, Query(max_length=300)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    since: Annotated[IsoDateTime | None, Query(description="ISO-8601, inclusive")] = None,
    until: Annotated[IsoDateTime | None, Query(description="ISO-8601, exclusive")] = None,
    environment: Annotated[
        str | None,
        Query(max_length=128, description="records that change this environment's configuration"),
    ] = None,
    order: Annotated[Literal["oldest", "newest"], Query(description="which records first")] = "oldest",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    return audit_page(
        store, target_kind=kind, target_key=key, actor=actor, action=action,
        since=_utc(since), until=_utc(until), environment=environment,
        newest_first=order == "newest", limit=limit, cursor=cursor,
    )


def _utc(moment: datetime | None) -> datetime | None:
    # A timestamp without an offset is read as UTC, the only zone the audit log uses.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
