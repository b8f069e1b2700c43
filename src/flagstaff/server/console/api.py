"""The console's JSON API (``/ui/api/...``), called by the console's scripts with the session.

Each handler checks the session, the CSRF token and the role *before* reading the body, then
calls the same store method as the public API with the signed-in principal as the audit actor.
Flag writes carry ``If-Match`` with the version the page was loaded at; a stale version
answers 412 with the audit records written since, so the page can show what changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flagstaff.engine.reassignment import reassignments
from flagstaff.errors import Invalid, PreconditionFailed
from flagstaff.remote import detail_json
from flagstaff.server.auth import Principal
from flagstaff.server.console import views
from flagstaff.server.console.session import ConsoleRoute, writer
from flagstaff.server.deps import get_snapshots, get_store
from flagstaff.server.etags import etag, parse_if_match

router = APIRouter(prefix="/api", route_class=ConsoleRoute)

T = TypeVar("T")


async def _call(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(lambda: func(*args, **kwargs))


async def _writer(request: Request, role: str) -> Principal:
    return await run_in_threadpool(writer, request, role)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise Invalid(f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object", details={"field": ""})
    return body


def _flag(record: Any, status: int = 200, **extra: Any) -> Response:
    return JSONResponse(
        {"flag": record.to_dict(), **extra}, status_code=status,
        headers={"ETag": etag(record.version)},
    )


_SERVER_FIELDS = ("version", "state", "created_at", "updated_at")


def _definition(record: Any) -> dict[str, Any]:
    return {k: v for k, v in record.definition.items() if k not in _SERVER_FIELDS}


async def _flag_write(request: Request, key: str, write: Callable[..., Any], **kwargs: Any) -> Response:
    return _flag(await _written(request, key, write, **kwargs))


async def _written(request: Request, key: str, write: Callable[..., Any], **kwargs: Any) -> Any:
    """Run a flag write under If-Match; on 412 attach the changes made since that version."""
    principal = await _writer(request, "editor")
    expected = parse_if_match(request.headers.get("if-match"))
    store = get_store(request)
    try:
        record = await _call(write, key=key, actor=principal.actor, if_match=expected, **kwargs)
    except PreconditionFailed:
        if expected is None:
            raise
        current = await _call(store.get_flag, key=key)
        changes = await _call(views.changes_since, store, key=key, version=expected)
        raise PreconditionFailed(
            f"This flag was changed since you opened it (you loaded version {expected}, "
            f"it is now version {current.version}). Nothing was saved.",
            details={"field": "If-Match", "current_version": current.version,
                     "changes": changes},
        ) from None
    return record


@router.post("/flags")
async def create_flag(request: Request) -> Response:
    principal = await _writer(request, "editor")
    body = await _body(request)
    record = await _call(get_store(request).create_flag, definition=body, actor=principal.actor)
    return _flag(record, 201)


@router.put("/flags/{key}")
async def replace_flag(request: Request, key: str) -> Response:
    await _writer(request, "editor")
    definition = await _body(request)
    if definition.get("key") not in (None, key):
        raise Invalid("a flag key cannot be changed", details={"field": "key"})
    for field in _SERVER_FIELDS:
        definition.pop(field, None)
    definition["key"] = key
    store = get_store(request)
    before = await _call(store.get_flag, key=key)
    after = await _written(request, key, store.replace_flag, definition=definition)
    # The editor tells the person what the save did: nothing, or which users it moved (the
    # same entries as the audit diff; the editor's If-Match makes ``before`` the written-over one).
    if after.version == before.version:
        return _flag(after, changed=False, reassigned=[])
    moved = [r.to_change() for r in reassignments(_definition(before), _definition(after))]
    return _flag(after, changed=True, reassigned=moved)


@router.patch("/flags/{key}/environments/{environment}")
async def toggle_flag(request: Request, key: str, environment: str) -> Response:
    await _writer(request, "editor")
    enabled = (await _body(request)).get("enabled")
    if not isinstance(enabled, bool):
        raise Invalid("enabled must be true or false", details={"field": "enabled"})
    return await _flag_write(
        request, key, get_store(request).set_flag_enabled, environment=environment, enabled=enabled
    )


@router.post("/flags/{key}/environments/{environment}/kill")
async def kill_flag(request: Request, key: str, environment: str) -> Response:
    """Kill; ``{"reason": "..."}`` (optional) is kept in the audit record and shown on the flag."""
    await _writer(request, "editor")  # the session is checked before the input
    reason = (await _body(request)).get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise Invalid("reason must be text of at most 500 characters", details={"field": "reason"})
    return await _flag_write(
        request, key, get_store(request).set_flag_enabled, environment=environment,
        enabled=False, action="killed", reason=(reason or "").strip() or None,
    )


@router.post("/flags/{key}/revert")
async def revert_flag(request: Request, key: str) -> Response:
    """``?version=N``: make the flag what it was at version N, as a new audited write."""
    await _writer(request, "editor")  # the session is checked before the input
    raw = request.query_params.get("version", "")
    if not raw.isdigit():
        raise Invalid("version must be a version number", details={"field": "version"})
    return await _flag_write(request, key, get_store(request).revert_flag, version=int(raw))


@router.post("/flags/{key}/client-side")
async def set_client_side(request: Request, key: str) -> Response:
    """``?available=true|false``: make the flag available to client-side SDK keys (browsers),
    or hide it from them."""
    await _writer(request, "editor")
    available = request.query_params.get("available")
    if available not in ("true", "false"):
        raise Invalid("available must be true or false", details={"field": "available"})
    return await _flag_write(request, key, get_store(request).patch_flag,
                             patch={"client_side": available == "true"})


@router.post("/flags/{key}/archive")
async def archive_flag(request: Request, key: str) -> Response:
    return await _flag_write(request, key, get_store(request).archive_flag)


@router.post("/flags/{key}/restore")
async def restore_flag(request: Request, key: str) -> Response:
    return await _flag_write(request, key, get_store(request).restore_flag)


@router.post("/segments")
async def create_segment(request: Request) -> Response:
    principal = await _writer(request, "editor")
    body = await _body(request)
    record = await _call(get_store(request).create_segment, definition=body, actor=principal.actor)
    return JSONResponse({"segment": record.to_dict()}, status_code=201)


@router.put("/segments/{key}")
async def replace_segment(request: Request, key: str) -> Response:
    principal = await _writer(request, "editor")
    definition = await _body(request)
    for field in ("version", "created_at", "updated_at"):
        definition.pop(field, None)
    definition["key"] = key
    record = await _call(
        get_store(request).replace_segment, key=key, definition=definition,
        actor=principal.actor, if_match=parse_if_match(request.headers.get("if-match")),
    )
    return JSONResponse({"segment": record.to_dict()})


@router.delete("/segments/{key}")
async def delete_segment(request: Request, key: str) -> Response:
    principal = await _writer(request, "editor")
    await _call(get_store(request).delete_segment, key=key, actor=principal.actor)
    return JSONResponse({"deleted": key})


@router.post("/environments")
async def create_environment(request: Request) -> Response:
    principal = await _writer(request, "admin")
    body = await _body(request)
    record = await _call(
        get_store(request).create_environment, key=body.get("key"), name=body.get("name") or None,
        actor=principal.actor,
    )
    return JSONResponse({"environment": record.to_dict()}, status_code=201)


@router.delete("/environments/{key}")
async def delete_environment(request: Request, key: str) -> Response:
    principal = await _writer(request, "admin")
    await _call(get_store(request).delete_environment, key=key, actor=principal.actor)
    return JSONResponse({"deleted": key})


@router.post("/tokens")
async def create_token(request: Request) -> Response:
    principal = await _writer(request, "admin")
    body = await _body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Invalid("give the token a name", details={"field": "name"})
    record, secret = await _call(
        get_store(request).create_token, name=name.strip(), kind=body.get("kind"),
        role=body.get("role") or None, environment=body.get("environment") or None,
        actor=principal.actor,
    )
    return JSONResponse({"token": record.to_dict(), "secret": secret}, status_code=201)


@router.delete("/tokens/{token_id}")
async def revoke_token(request: Request, token_id: str) -> Response:
    principal = await _writer(request, "admin")
    record = await _call(get_store(request).revoke_token, token_id=token_id, actor=principal.actor)
    return JSONResponse({"token": record.to_dict()})


@router.post("/evaluate")
async def evaluate(request: Request) -> Response:
    """The sandbox: every flag's value, variant and reason for a context in one environment."""
    await _writer(request, "viewer")
    body = await _body(request)
    context, environment = body.get("context"), body.get("environment")
    if not isinstance(context, dict):
        raise Invalid("the context must be a JSON object", details={"field": "context"})
    if not isinstance(environment, str) or not environment:
        raise Invalid("choose an environment", details={"field": "environment"})
    store = get_store(request)
    if not await _call(store.environment_exists, key=environment):
        raise Invalid(f"no environment {environment!r}", details={"field": "environment"})
    cached = await _call(get_snapshots(request).get, environment)
    details = cached.snapshot.evaluate_all(context)
    return JSONResponse({
        "environment": environment,
        "version": cached.version,
        "flags": [detail_json(key, detail) for key, detail in sorted(details.items())],
    })
