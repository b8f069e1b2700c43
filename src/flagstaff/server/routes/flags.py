"""Flag management routes: CRUD, archive/restore, per-environment toggle and kill, history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response

from flagstaff.errors import Invalid
from flagstaff.server.auth import Editor, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.etags import etag, parse_if_match
from flagstaff.server.flag_bodies import incoming_flag, outgoing_flag
from flagstaff.server.models import FlagIn, FlagReplaceIn, KillIn, PageOut, ToggleIn
from flagstaff.server.routes.audit import audit_page
from flagstaff.server.routes.lifecycle import stale_page
from flagstaff.store import Store

router = APIRouter(prefix="/flags", tags=["flags"])

StoreDep = Annotated[Store, Depends(get_store)]
FlagKey = Annotated[str, Path(max_length=128, description="the flag key")]
EnvKey = Annotated[str, Path(max_length=128, description="the environment key")]
IfMatch = Annotated[
    str | None,
    Header(description='Expected version ETag (`"3"`, `W/"3"`, `3` or `*`); stale -> 412'),
]
READ = error_responses(401, 403, 404)
SORT_HELP = (
    "order over every matching flag, pages following it: key (default), name, kind, tags "
    "(first tag), created, updated or status:<environment> (on first); a leading - reverses "
    "it; ties follow in key order"
)
WRITE = error_responses(400, 401, 403, 404, 412, 413)


def _flag(response: Response, record: Any) -> dict[str, Any]:
    response.headers["ETag"] = etag(record.version)
    return outgoing_flag(record.to_dict())


def _environment_keys(store: Store) -> Callable[[], list[str]]:
    return lambda: [e.key for e in store.list_environments()]


@router.post(
    "", status_code=201, summary="Create a flag (canonical body, or the spec's shapes)",
    responses=error_responses(400, 401, 403, 409, 413),
)
def create_flag(body: FlagIn, response: Response, principal: Editor, store: StoreDep) -> dict[str, Any]:
    incoming = incoming_flag(body.payload(), environments=_environment_keys(store))
    with incoming.fields_as_sent():
        record = store.create_flag(definition=incoming.definition, actor=principal.actor)
    response.headers["Location"] = f"/flags/{record.key}"
    return _flag(response, record)


@router.get("", summary="List flags", response_model=PageOut, responses=error_responses(400, 401, 403))
def list_flags(
    _: Viewer,
    store: StoreDep,
    request: Request,
    state: Annotated[
        str | None,
        Query(pattern="^(active|archived|stale)$",
              description="stale: active flags unused or serving one variant (docs/experiments.md)"),
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200, description="search key, name, description")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    sort: Annotated[str | None, Query(max_length=140, description=SORT_HELP)] = None,
) -> dict[str, Any]:
    if state == "stale":
        return stale_page(request, limit=limit, cursor=cursor, sort=sort)
    page = store.list_flags(state=state, tag=tag, q=q, limit=limit, cursor=cursor, sort=sort)
    return {"items": [outgoing_flag(r.to_dict()) for r in page.items], "next_cursor": page.next_cursor}


@router.get("/{key}", summary="Get a flag (ETag: its version)", responses=READ)
def get_flag(key: FlagKey, response: Response, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return _flag(response, store.get_flag(key=key))


@router.put("/{key}", summary="Replace a flag (canonical body, or the spec's shapes)", responses=WRITE)
def replace_flag(
    key: FlagKey, body: FlagReplaceIn, response: Response, principal: Editor, store: StoreDep,
    if_match: IfMatch = None,
) -> dict[str, Any]:
    payload = body.payload()
    _refuse_key_change(key, payload)
    payload["key"] = key
    incoming = incoming_flag(payload, environments=_environment_keys(store))
    with incoming.fields_as_sent():
        record = store.replace_flag(
            key=key, definition=incoming.definition, actor=principal.actor,
            if_match=parse_if_match(if_match),
        )
    return _flag(response, record)


@router.patch(
    "/{key}", summary="Change part of a flag (JSON merge patch, RFC 7396)", responses=WRITE,
)
def patch_flag(
    key: FlagKey,
    patch: Annotated[dict[str, Any], Body(description="JSON merge patch; null removes a field")],
    response: Response, principal: Editor, store: StoreDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    _refuse_key_change(key, patch)
    if "default_value" in patch:
        raise Invalid(
            "default_value is read-only: it is the off variant's value; patch off_variant or "
            "that variant's value instead", details={"field": "default_value"},
        )
    record = store.patch_flag(
        key=key, patch=patch, actor=principal.actor, if_match=parse_if_match(if_match)
    )
    return _flag(response, record)


@router.delete("/{key}", summary="Archive a flag (soft delete; restorable)", responses=WRITE)
def archive_flag(
    key: FlagKey, response: Response, principal: Editor, store: StoreDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    record = store.archive_flag(key=key, actor=principal.actor, if_match=parse_if_match(if_match))
    return _flag(response, record)


@router.post("/{key}/restore", summary="Restore an archived flag", responses=WRITE)
def restore_flag(
    key: FlagKey, response: Response, principal: Editor, store: StoreDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    record = store.restore_flag(key=key, actor=principal.actor, if_match=parse_if_match(if_match))
    return _flag(response, record)


@router.patch(
    "/{key}/environments/{environment}",
    summary="Turn a flag on or off in one environment", responses=WRITE,
)
def toggle_flag(
    key: FlagKey, environment: EnvKey, body: ToggleIn, response: Response,
    principal: Editor, store: StoreDep, if_match: IfMatch = None,
) -> dict[str, Any]:
    record = store.set_flag_enabled(
        key=key, environment=environment, enabled=body.enabled, actor=principal.actor,
        if_match=parse_if_match(if_match),
    )
    return _flag(response, record)


@router.post(
    "/{key}/environments/{environment}/kill",
    summary="Kill switch: disable a flag in one environment now", responses=WRITE,
)
def kill_flag(
    key: FlagKey, environment: EnvKey, response: Response, principal: Editor, store: StoreDep,
    if_match: IfMatch = None, body: KillIn | None = None,
) -> dict[str, Any]:
    record = store.set_flag_enabled(
        key=key, environment=environment, enabled=False, actor=principal.actor,
        if_match=parse_if_match(if_match), action="killed",
        reason=(body.reason or "").strip() or None if body is not None else None,
    )
    return _flag(response, record)


@router.get(
    "/{key}/audit", summary="A flag's change history, oldest first",
    response_model=PageOut, responses=READ,
)
def flag_audit(
    key: FlagKey, _: Viewer, store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    store.get_flag(key=key)  # 404 for a flag that never existed, rather than an empty history
    return audit_page(store, target_kind="flag", target_key=key, limit=limit, cursor=cursor)


def _refuse_key_change(key: str, body: dict[str, Any]) -> None:
    if "key" in body and body["key"] not in ("", key):
        raise Invalid(
            f"a flag key is immutable: the body names {body['key']!r} but the URL names {key!r}; "
            "create a new flag instead",
            details={"field": "key"},
        )
