"""The one place where failures become HTTP responses.

Every 4xx/5xx body has the shape ``{"error": {"code", "message", "details"}}``:

* ``flagstaff.errors.FlagstaffError`` subclasses use their own ``status`` and ``code``;
* request validation (path, query, header or body) is 400 ``invalid`` with the dotted field
  path in ``details.field``; unparseable JSON is 400 ``invalid_json``;
* routing errors (404, 405) and the body limit (413) keep their status with a matching code;
  a 405 names in ``Allow`` every method the path serves (routing alone names the first route's),
  and ``OPTIONS`` on a path that has no ``OPTIONS`` route is ``204`` with that ``Allow``;
* anything unexpected is 500 ``internal_error``: logged with the request id, never leaked.
  (That last case is rendered by the request-id middleware, which sees every exception.)

Routes under ``/ofrep/`` answer in OFREP's shapes instead (:func:`ofrep_error`): any OFREP
provider must understand our failures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.routing import Match

from flagstaff.errors import FlagstaffError
from flagstaff.server.redaction import redact

log = logging.getLogger("flagstaff.server")

_HTTP_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid"])
    message: str = Field(examples=["environments.production.rules[0].conditions[0].operator: unknown operator 'eq'"])
    details: dict[str, Any] = Field(default_factory=dict, examples=[{"field": "type"}])


class ErrorBody(BaseModel):
    """The common error shape of every 4xx/5xx answer."""

    error: ErrorDetail


_DESCRIPTIONS = {
    304: "Not modified (the `If-None-Match` ETag is current)",
    400: "Invalid request (`invalid`, `invalid_json`); `details.field` names the field",
    401: "Missing, unknown or revoked token (`unauthorized`)",
    403: "The token's role or kind does not allow this (`forbidden`)",
    404: "Not found (`not_found`)",
    409: "Already exists (`flag_exists`, `segment_exists`, `environment_exists`)",
    412: "Stale `If-Match` version; nothing was changed (`precondition_failed`)",
    413: "Request body over the size limit (`too_large`)",
    503: "The database is unreachable (`unavailable`)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries for the given statuses, all with the common shape."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": _DESCRIPTIONS.get(status, "Error")}
        if status != 304:
            entry["model"] = ErrorBody
        responses[status] = entry
    return responses


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=status, headers=headers)


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "environments", "prod", "rules", 1)`` -> ``environments.prod.rules[1]``."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        parts = parts[1:]
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


OFREP_PREFIX = "/ofrep/"


def ofrep_body(
    status: int, message: str, *, error_code: str | None = None, key: str | None = None,
) -> dict[str, Any]:
    """An OFREP error body: ``{errorCode, errorDetails}`` for 400s (``{key, ...}`` for one flag),
    ``{errorDetails}`` (OFREP's general error) for the statuses OFREP gives no code."""
    body: dict[str, Any] = {}
    if key is not None:
        body["key"] = key
    if error_code is None and status == 400:
        error_code = "GENERAL"
    if error_code is not None:
        body["errorCode"] = error_code
    body["errorDetails"] = message
    return redact(body)  # type: ignore[no-any-return]


def error_payload(error: FlagstaffError, path: str) -> dict[str, Any]:
    """The body answering ``error`` on ``path``: OFREP's shape under ``/ofrep/``, else ours.
    Also used by the middlewares that answer before routing (limits, rate limits)."""
    if path.startswith(OFREP_PREFIX):
        code = error.details.get("errorCode")
        if code is None and error.code == "invalid_json":
            code = "PARSE_ERROR"
        key = error.details.get("key")
        return ofrep_body(error.status, error.message,
                          error_code=code if isinstance(code, str) else None,
                          key=key if isinstance(key, str) else None)
    # Messages may quote input; a secret pasted into a field is never echoed back.
    return redact(error.to_dict())  # type: ignore[no-any-return]


def ofrep_error(
    status: int, message: str, *, error_code: str | None = None, key: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(ofrep_body(status, message, error_code=error_code, key=key),
                        status_code=status, headers=headers)


def _is_ofrep(request: Request) -> bool:
    return request.url.path.startswith(OFREP_PREFIX)


async def _flagstaff_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FlagstaffError)
    retry = exc.details.get("retry_after_seconds")
    headers = {"Retry-After": str(retry)} if exc.status == 429 and retry is not None else None
    return JSONResponse(error_payload(exc, request.url.path), status_code=exc.status,
                        headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if _is_ofrep(request):
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = field_path(tuple(first.get("loc", ())))
        return ofrep_error(400, f"{field or 'request'}: {first.get('msg', 'invalid value')}",
                           error_code="GENERAL")
    content_type = request.headers.get("content-type", "")
    if content_type and "json" not in content_type and any(
        tuple(e.get("loc", ())) == ("body",) for e in errors
    ):
        # e.g. `curl -d '{...}'`, which sends a form content type: say what to do.
        return error_response(
            400,
            "invalid",
            f"the request body must be JSON sent with Content-Type: application/json "
            f"(got {content_type.split(';')[0]!r})",
            {"field": "Content-Type"},
        )
    if any(err.get("type") == "json_invalid" for err in errors):
        reason = next(str(e.get("ctx", {}).get("error", "")) for e in errors)
        return error_response(400, "invalid_json", f"request body is not valid JSON: {reason}")
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    field = field_path(loc)
    if loc == ("body",) and first.get("type") == "missing":
        message = "a JSON request body is required"
    else:
        message = f"{field or 'body'}: {first.get('msg', 'invalid value')}"
    listed = [{"field": field_path(e.get("loc", ())), "message": e.get("msg", "")} for e in errors]
    return error_response(400, "invalid", message, {"field": field, "errors": listed})


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> str:
    """The ``Allow`` value of the request's path: every method some route serves there."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join([*allowed, "OPTIONS"])


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        allow = allowed_methods(request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        exc.headers = {**(exc.headers or {}), "Allow": allow}
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = "no such route"
    if _is_ofrep(request):
        return ofrep_error(exc.status_code, message, headers=dict(exc.headers or {}))
    return error_response(exc.status_code, code, message, headers=dict(exc.headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FlagstaffError, _flagstaff_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
