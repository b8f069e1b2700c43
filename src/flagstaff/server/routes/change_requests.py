"""Change requests (four eyes): propose, comment, approve, reject, cancel, apply.

With an approval policy on an environment, direct writes to its configuration answer 409
``review_required``; changes go through here instead.  Applying writes the proposed
configuration only if the flag is still at the request's base version (412 otherwise, and the
request is marked ``conflict``); ``{"at": ...}`` applies it at a set time instead.
See docs/governance.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from flagstaff.errors import Invalid
from flagstaff.server.auth import Editor, Principal, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.routes.schedules import parse_time, wake
from flagstaff.store import Store
from flagstaff.store.governance.records import ChangeRequestRecord

router = APIRouter(prefix="/change-requests", tags=["change requests"])

StoreDep = Annotated[Store, Depends(get_store)]
ChangeId = Annotated[int, Path(ge=1, le=2**53, description="the change request id")]
READ = error_responses(400, 401, 403, 404)
WRITE = error_responses(400, 401, 403, 404, 409, 412, 413)
EXAMPLE = {"flag": "new-checkout", "environment": "production",
           "patch": {"fallthrough": {"variant": "true"}}, "description": "launch to everyone"}
Comment = Annotated[dict[str, Any] | None, Body(examples=[{"comment": "looks right"}])]


def view(store: Store, record: ChangeRequestRecord) -> dict[str, Any]:
    """The change request with the flag's current version and whether it can still apply."""
    out = record.to_dict()
    current = store.get_flag(key=record.flag)
    out["current_version"] = current.version
    out["mergeable"] = current.version == record.base_version and record.status in (
        "open", "approved", "scheduled")
    return out


def _comment(body: dict[str, Any] | None) -> Any:
    if body is None:
        return None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object", details={"field": ""})
    return body.get("comment")


@router.post("", status_code=201, summary="Propose a change to one flag in one environment",
             responses=WRITE)
def create_change_request(
    principal: Editor, store: StoreDep,
    body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
) -> dict[str, Any]:
    for field in ("flag", "environment"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise Invalid(f"{field} is required (a key)", details={"field": field})
    base = body.get("base_version")
    if base is not None and (isinstance(base, bool) or not isinstance(base, int)):
        raise Invalid("base_version must be an integer", details={"field": "base_version"})
    record = store.create_change_request(
        flag=body["flag"], environment=body["environment"], patch=body.get("patch"),
        config=body.get("config"), description=body.get("description"), base_version=base,
        actor=principal.actor, token_id=principal.token_id,
    )
    return view(store, record)


@router.get("", summary="List change requests, newest first", responses=READ)
def list_change_requests(
    _: Viewer, store: StoreDep,
    status: Annotated[
        str | None,
        Query(pattern="^(open|approved|scheduled|applied|rejected|cancelled|conflict)$"),
    ] = None,
    flag: Annotated[str | None, Query(max_length=128)] = None,
    environment: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = store.list_change_requests(
        status=status, flag=flag, environment=environment, limit=limit, cursor=cursor
    )
    return {"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor}


@router.get("/{change_id}", summary="Get a change request with its diff and reviews",
            responses=READ)
def get_change_request(change_id: ChangeId, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return view(store, store.get_change_request(change_request_id=change_id))


def _review(store: Store, principal: Principal, change_id: int, verdict: str, comment: Any) -> dict[str, Any]:
    record = store.review_change_request(
        change_request_id=change_id, verdict=verdict, comment=comment, actor=principal.actor,
        token_id=principal.token_id, role=principal.role or "",
    )
    return view(store, record)


@router.post("/{change_id}/approve", summary="Approve (as the environment's policy allows)",
             responses=WRITE)
def approve(change_id: ChangeId, principal: Editor, store: StoreDep, body: Comment = None) -> dict[str, Any]:
    return _review(store, principal, change_id, "approved", _comment(body))


@router.post("/{change_id}/reject", summary="Reject, with a comment saying why",
             responses=WRITE)
def reject(change_id: ChangeId, principal: Editor, store: StoreDep, body: Comment = None) -> dict[str, Any]:
    return _review(store, principal, change_id, "rejected", _comment(body))


@router.post("/{change_id}/comments", summary="Comment on a change request", responses=WRITE)
def comment(change_id: ChangeId, principal: Editor, store: StoreDep, body: Comment = None) -> dict[str, Any]:
    return _review(store, principal, change_id, "commented", _comment(body))


@router.post("/{change_id}/cancel", summary="Withdraw a change request (author or admin)",
             responses=WRITE)
def cancel(change_id: ChangeId, principal: Editor, store: StoreDep) -> dict[str, Any]:
    record = store.cancel_change_request(
        change_request_id=change_id, actor=principal.actor, token_id=principal.token_id,
        role=principal.role or "",
    )
    return view(store, record)


@router.post("/{change_id}/apply",
             summary="Apply an approved change now, or at `at` (If-Match against its base)",
             responses=WRITE)
def apply(
    request: Request, change_id: ChangeId, principal: Editor, store: StoreDep,
    body: Annotated[dict[str, Any] | None, Body(examples=[{"at": "2030-01-01T09:00:00Z"}])] = None,
) -> dict[str, Any]:
    at = None
    if body and body.get("at") is not None:
        at = parse_time(body["at"])
    record = store.apply_change_request(change_request_id=change_id, actor=principal.actor, at=at)
    if at is not None:
        wake(request)
    return view(store, record)
