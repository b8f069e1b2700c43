"""The page checks of :mod:`flagstaff.browser.guard`, for a server request and its principal.

The decisions (origin allowed? secure-mode hash valid?) and their messages are shared with the
relay; this module only supplies the server's facts: the app's access policy (read from the
store) and refusal log, and the authenticated principal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request

from flagstaff.browser import guard
from flagstaff.server.auth import Principal
from flagstaff.server.browser.access import AccessPolicy


def access_policy(request: Request) -> AccessPolicy:
    policy: AccessPolicy = request.app.state.access_policy
    return policy


def sdk_key_of(principal: Principal) -> guard.SdkKey:
    """The key as the browser checks name it (the evaluation fast path keeps one per key)."""
    return guard.SdkKey(principal.kind, principal.token_id, principal.name)


def check_origin(request: Request, principal: Principal, environment: str) -> None:
    check_origin_of(request.app.state, request.headers.get("origin"), request.url.path,
                    principal, environment)


def check_origin_of(
    state: Any, origin: str | None, path: str, principal: Principal, environment: str,
) -> None:
    """:func:`check_origin` from the app's state and the request's ``Origin`` and path."""
    guard.check_origin(state.access_policy, state.cors_refusals, origin=origin, path=path,
                       key=sdk_key_of(principal), environment=environment)


def checked_context(
    request: Request, principal: Principal, environment: str, context: Mapping[str, Any],
) -> dict[str, Any]:
    """The context to evaluate (:func:`flagstaff.browser.guard.checked_context`)."""
    return checked_context_of(access_policy(request), principal, environment, context)


def checked_context_of(
    policy: AccessPolicy, principal: Principal, environment: str, context: Mapping[str, Any],
) -> dict[str, Any]:
    """:func:`checked_context` from the access policy itself."""
    return guard.checked_context(policy, kind=principal.kind, environment=environment,
                                 context=context)
