"""The evaluation context of an OFREP request, read from its body (or 400 in OFREP's words).

A dependency, so handlers can run while the body is read on the loop; shared by the server's
OFREP routes and the relay's.  :func:`context_of` is its check of a parsed body, which the
evaluation fast path (``server/fast_evaluation.py``) applies to the body it parsed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request

from flagstaff.errors import Invalid
from flagstaff.server.limits import NOT_PARSED, PARSED_BODY_KEY


async def read_context(request: Request) -> dict[str, Any]:
    """The request's evaluation context, or 400 in OFREP's words (a dependency, so the
    handlers themselves can run in the thread pool while the body is read on the loop)."""
    key = request.path_params.get("key")
    parsed = request.scope.get(PARSED_BODY_KEY, NOT_PARSED)
    if parsed is NOT_PARSED:
        raw = await request.body()
        if not raw.strip():
            return {}
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise Invalid(f"the request body is not valid JSON: {exc}",
                          details={"errorCode": "PARSE_ERROR", "key": key}) from None
    return context_of(parsed, key)


def context_of(parsed: Any, key: str | None) -> dict[str, Any]:
    """The evaluation context in a parsed request body (also the evaluation fast path's)."""
    if not isinstance(parsed, dict):
        raise Invalid('the request body must be a JSON object: {"context": {...}}',
                      details={"errorCode": "INVALID_CONTEXT", "key": key})
    context = parsed.get("context", {})
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise Invalid("context must be a JSON object",
                      details={"errorCode": "INVALID_CONTEXT", "key": key})
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise Invalid("context.targetingKey must be a string",
                      details={"errorCode": "INVALID_CONTEXT", "key": key})
    return context


Context = Annotated[dict[str, Any], Depends(read_context)]
