"""Segment routes: reusable, global sets of included/excluded keys and rules."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from flagstaff.errors import Invalid
from flagstaff.server.auth import Editor, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.etags import etag, parse_if_match
from flagstaff.server.models import PageOut, SegmentIn, SegmentReplaceIn
from flagstaff.store import Store

router = APIRouter(prefix="/segments", tags=["segments"])

StoreDep = Annotated[Store, Depends(get_store)]
SegmentKey = Annotated[str, Path(max_length=128)]
IfMatch = Annotated[str | None, Header(description="Expected version ETag; stale -> 412")]


def _segment(response: Response, record: Any) -> dict[str, Any]:
    response.headers["ETag"] = etag(record.version)
    return dict(record.to_dict())


@router.post("", status_code=201, summary="Create a segment", responses=error_responses(400, 401, 403, 409, 413))
def create_segment(body: SegmentIn, response: Response, principal: Editor, store: StoreDep) -> dict[str, Any]:
    record = store.create_segment(definition=body.payload(), actor=principal.actor)
    response.headers["Location"] = f"/segments/{record.key}"
    return _segment(response, record)


@router.get("", summary="List segments", response_model=PageOut, responses=error_responses(400, 401, 403))
def list_segments(
    _: Viewer, store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = store.list_segments(limit=limit, cursor=cursor)
    return {"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor}


@router.get("/{key}", summary="Get a segment", responses=error_responses(401, 403, 404))
def get_segment(key: SegmentKey, response: Response, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return _segment(response, store.get_segment(key=key))


@router.put("/{key}", summary="Replace a segment", responses=error_responses(400, 401, 403, 404, 412, 413))
def replace_segment(
    key: SegmentKey, body: SegmentReplaceIn, response: Response, principal: Editor,
    store: StoreDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    definition = body.payload()
    if definition.get("key") not in (None, "", key):
        raise Invalid("a segment key is immutable", details={"field": "key"})
    definition["key"] = key
    record = store.replace_segment(
        key=key, definition=definition, actor=principal.actor,
        if_match=parse_if_match(if_match),
    )
    return _segment(response, record)


@router.delete(
    "/{key}", status_code=204, summary="Delete a segment (refused while flags reference it)",
    responses=error_responses(400, 401, 403, 404, 409),
)
def delete_segment(key: SegmentKey, principal: Editor, store: StoreDep) -> Response:
    store.delete_segment(key=key, actor=principal.actor)
    return Response(status_code=204)
