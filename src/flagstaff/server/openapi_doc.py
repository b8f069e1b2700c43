"""Completes the generated OpenAPI document so that it states what the server really does.

FastAPI documents a ``422`` for every route with parameters, which Flagstaff never sends (request
validation is ``400 invalid``), and knows nothing of the answers produced outside the routes:
the common error shape for ``401``/``403``/``429``/``503`` of authenticated routes, ``400``,
``408`` and ``413`` of routes with a body, the stream cap's ``429``, or ``/metrics``.  It also
cannot say *which* token a route takes; that is derived here from each route's ``require_*``
dependency and written into its description and an ``x-flagstaff-auth`` extension.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from flagstaff.server.errors import ErrorBody

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_DESCRIPTIONS = {
    400: "Invalid request (`invalid`, `invalid_json`); `details.field` names the field",
    401: "Missing, unknown or revoked token (`unauthorized`)",
    403: "The token's role or kind does not allow this (`forbidden`)",
    408: "The request body did not arrive in time (`request_timeout`)",
    413: "Request body over the size limit (`too_large`)",
    429: "Too many authentication failures from this address, or too many open streams for "
    "this key (`rate_limited`, with `Retry-After`)",
    503: "The database is unreachable (`unavailable`)",
}
_ROLE_TEXT = {
    "require_viewer": ("management", "viewer"),
    "require_editor": ("management", "editor"),
    "require_admin": ("management", "admin"),
}
# One Server-Sent Event (OpenAPI 3.1 reading: the schema of a stream describes each event).
_SSE_EVENT = {
    "type": "object",
    "description": "One event: `put`, `flag_updated`, `flag_archived`, `segment_updated`, "
    "`segment_deleted` or `environment_deleted` (docs/streaming.md)",
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "minimum": 0},
    },
}
_WEBSOCKET_NOTE = (
    "\n\n`GET /ws` (WebSocket, not listed below as OpenAPI cannot describe it) carries the "
    "`/stream` events; it takes a server-side SDK key in the `Authorization` header. "
    "See docs/streaming.md."
)


def route_auth(route: Any) -> dict[str, Any] | None:
    """What token a route takes, from its ``require_*`` / ``authenticate`` dependencies."""
    names: list[str] = []
    pending = list(route.dependant.dependencies)
    while pending:
        dep = pending.pop()
        name = getattr(dep.call, "__name__", "")
        names.append(name)
        pending.extend(dep.dependencies)
    for name in names:
        if name in _ROLE_TEXT:
            kind, role = _ROLE_TEXT[name]
            return {"kinds": [kind], "role": role}
        if name.startswith("require_sdk_"):
            kinds = ["sdk-client" if "client" in part else "sdk-server"
                     for part in name.removeprefix("require_sdk_").split("_sdk_") if part]
            return {"kinds": sorted(set(kinds)), "role": None}
    if "authenticate" in names or "authenticate_from_memory" in names:
        return {"kinds": ["management", "sdk-server", "sdk-client"], "role": None}
    return None


def _auth_text(auth: dict[str, Any]) -> str:
    if auth.get("role"):
        return f"**Auth:** a management token with at least the `{auth['role']}` role."
    kinds = ", ".join(f"`{k}`" for k in auth["kinds"])
    credential = str(auth.get("credential", ""))
    if credential.startswith("bearer-or-body:"):
        field = credential.removeprefix("bearer-or-body:")
        return (f"**Auth:** a bearer token of kind {kinds}, or a `sdk-client` key in the "
                f"body's `{field}` field (for `navigator.sendBeacon`).")
    if credential == "signed-url":
        return (f"**Auth:** the signed, short-lived `token` query parameter issued to a key of "
                f"kind {kinds}; no `Authorization` header.")
    return f"**Auth:** a bearer token of kind {kinds}."


def _add(responses: dict[str, Any], status: int) -> None:
    responses.setdefault(
        str(status),
        {"description": _DESCRIPTIONS[status],
         "content": {"application/json": {"schema": dict(_ERROR_REF)}}},
    )


def complete(doc: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Rewrite ``doc`` (the generated document) in place; returns it."""
    auth_by_op: dict[tuple[str, str], dict[str, Any]] = {}
    # FastAPI >= 0.16x keeps included routers as contexts carrying the effective path.
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            auth = route_auth(route)
            if auth is not None and route.path_format is not None:
                for method in route.methods or ():
                    auth_by_op[(route.path_format, method.lower())] = auth

    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    if "ErrorBody" not in schemas:
        model = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(model.pop("$defs", {}))
        schemas["ErrorBody"] = model
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _hoist_local_definitions(doc.get("paths", {}), schemas)

    for path, item in doc.get("paths", {}).items():
        for method, op in item.items():
            responses = op.setdefault("responses", {})
            had_validation = responses.pop("422", None) is not None
            if had_validation or op.get("requestBody") or op.get("parameters"):
                _add(responses, 400)
            if op.get("requestBody"):
                _add(responses, 408)
                _add(responses, 413)
            # A route may state its own (the event stream's credential is a signed URL).
            auth = op.get("x-flagstaff-auth") or auth_by_op.get((path, method))
            if auth is not None:
                op["x-flagstaff-auth"] = auth
                op["description"] = (op.get("description", "") + "\n\n" + _auth_text(auth)).strip()
            if op.get("security") or auth is not None:
                for status in (401, 403, 429, 503):
                    _add(responses, status)
            for status, response in responses.items():
                # Errors are JSON even where the success is not (the SSE stream).
                if status.isdigit() and int(status) >= 400 and "content" in response:
                    response["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
            if path == "/stream":
                _add(responses, 429)
                ok = responses.get("200", {}).get("content", {}).get("text/event-stream")
                if ok is not None:
                    ok["schema"] = _SSE_EVENT
    _add_metrics(doc)
    info = doc.setdefault("info", {})
    info["description"] = info.get("description", "") + _WEBSOCKET_NOTE
    return doc


def _hoist_local_definitions(node: Any, schemas: dict[str, Any]) -> None:
    """Move the ``$defs`` of hand-written body schemas (``model_json_schema()`` in a route's
    ``openapi_extra``) into ``components/schemas``: their ``#/$defs/...`` references are
    resolved from the document root, where viewers such as ReDoc cannot find them."""
    if isinstance(node, list):
        for item in node:
            _hoist_local_definitions(item, schemas)
        return
    if not isinstance(node, dict):
        return
    for name, definition in node.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
        _hoist_local_definitions(definition, schemas)
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
    for value in node.values():
        _hoist_local_definitions(value, schemas)


def _add_metrics(doc: dict[str, Any]) -> None:
    doc["paths"].setdefault("/metrics", {"get": {
        "tags": ["operations"],
        "summary": "Prometheus metrics (text exposition format)",
        "description": "Open unless `FLAGSTAFF_STREAM_METRICS_TOKEN` is set; then "
        "`Authorization: Bearer <metrics token>` is required.",
        "operationId": "metrics_get",
        "responses": {
            "200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": {"description": _DESCRIPTIONS[401],
                    "content": {"application/json": {"schema": dict(_ERROR_REF)}}},
        },
    }})


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (computed once)."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    completed: list[int] = []

    def openapi() -> dict[str, Any]:
        # FastAPI regenerates the document when routes change; complete each new one once.
        doc = generate()
        if completed != [id(doc)]:
            complete(doc, app)
            completed[:] = [id(doc)]
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
