"""``GET /sdk/flags``: the full environment snapshot for server-side SDKs (polling and start-up).

Only server-side keys may download definitions: they contain targeting lists (e-mail
addresses, user ids) that must never reach browsers, which hold client-side keys.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi.responses import JSONResponse

from flagstaff.server.auth import ServerSdk
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.etags import etag, none_match
from flagstaff.server.fleet import ReportHeaders
from flagstaff.store import Store

router = APIRouter(tags=["sdk"])


@router.get(
    "/sdk/flags",
    summary="Snapshot of the key's environment (contract §3); ETag is the latest event id",
    responses=error_responses(304, 401, 403),
)
def sdk_flags(
    principal: ServerSdk,
    store: Annotated[Store, Depends(get_store)],
    _report: ReportHeaders,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Any:
    assert principal.environment is not None  # SDK keys are always bound to one environment
    # The cheap id check first, so an unchanged poll never builds the snapshot.
    latest = etag(store.latest_event_id())
    if none_match(if_none_match, latest):
        return Response(status_code=304, headers={"ETag": latest})
    snapshot: dict[str, Any] = store.snapshot(environment=principal.environment)
    current = etag(int(snapshot["version"]))
    if none_match(if_none_match, current):
        return Response(status_code=304, headers={"ETag": current})
    return JSONResponse(snapshot, headers={"ETag": current})
