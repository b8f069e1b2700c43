"""Console sessions: the sign-in cookie, CSRF tokens, roles and the security headers.

The session cookie holds the management token's secret (HttpOnly, SameSite=Strict, Secure
over https, path ``/ui``); every request re-authenticates it through ``store.authenticate``,
so a revoked token ends its console sessions at once.  The CSRF token is an HMAC of the
secret: it is bound to the session, unforgeable without the cookie (which scripts cannot
read) and the same on every replica and after restarts, so no server-side session state is
needed.  Every state-changing console request must carry it (``X-CSRF-Token`` header or a
``csrf`` form field).

:class:`ConsoleRoute` wraps every console handler: it adds the security headers
(``X-Frame-Options: DENY`` and a ``Content-Security-Policy`` without inline scripts),
redirects signed-out page requests to the sign-in page and renders domain errors for the
console's JSON API in the common error shape.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.routing import APIRoute

from flagstaff.errors import FlagstaffError, Forbidden, Unauthorized
from flagstaff.server.auth import MANAGEMENT, Principal
from flagstaff.server.deps import get_store

SESSION_COOKIE = "flagstaff_session"
LOGIN_COOKIE = "flagstaff_login"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_PATH = "/ui"
_ROLE_RANK = {"viewer": 0, "editor": 1, "admin": 2}
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class SignInRequired(Exception):
    """A console page was requested without a valid session: redirect to the sign-in page."""


def csrf_token(secret: str) -> str:
    """The session's CSRF token: an HMAC keyed by the session secret."""
    return hmac.new(secret.encode(), b"flagstaff-console-csrf", hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(
        name, value, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(
        name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=is_https(request)
    )


def session_secret(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def principal_for(request: Request, secret: str) -> Principal | None:
    """The management principal behind ``secret``, or None (unknown, revoked or an SDK key)."""
    record = get_store(request).authenticate(secret=secret)
    if record is None or record.kind != MANAGEMENT:
        return None
    return Principal(
        token_id=record.id, name=record.name, kind=record.kind, role=record.role,
        environment=record.environment,
    )


def wants_json(request: Request) -> bool:
    """The console's JSON API, its event stream and any write answer in the JSON error shape."""
    path = request.url.path
    return path.startswith("/ui/api/") or path == "/ui/events" or request.method not in _SAFE_METHODS


def current(request: Request) -> Principal:
    """The signed-in principal; pages redirect to sign-in, the JSON API answers 401."""
    secret = session_secret(request)
    principal = principal_for(request, secret) if secret else None
    if principal is None:
        if wants_json(request):
            raise Unauthorized("sign in to the console first")
        raise SignInRequired
    request.state.principal = principal
    request.state.csrf = csrf_token(secret or "")
    return principal


def check_csrf(request: Request, given: str | None) -> None:
    """Refuse a state-changing request whose CSRF token does not match the session's."""
    secret = session_secret(request) or ""
    expected = csrf_token(secret)
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden(
            "missing or wrong CSRF token; reload the page and try again",
            code="csrf_failed", details={"field": CSRF_HEADER},
        )


def can(principal: Principal, role: str) -> bool:
    return _ROLE_RANK.get(principal.role or "", -1) >= _ROLE_RANK[role]


def require(principal: Principal, role: str) -> None:
    if not can(principal, role):
        raise Forbidden(f"this needs the {role} role (you are signed in as {principal.role})")


def writer(request: Request, role: str) -> Principal:
    """The principal for a console write: signed in, CSRF token checked, role at least ``role``."""
    principal = current(request)
    check_csrf(request, request.headers.get(CSRF_HEADER))
    require(principal, role)
    return principal


def apply_security_headers(response: Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")


class ConsoleRoute(APIRoute):
    """Adds the security headers to every console answer and maps console failures."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def console_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)
            except FlagstaffError as exc:
                if wants_json(request):
                    response = JSONResponse(exc.to_dict(), status_code=exc.status)
                else:
                    response = error_page(request, exc)
            apply_security_headers(response)
            return response

        return console_handler


def error_page(request: Request, exc: FlagstaffError) -> Response:
    from flagstaff.server.console.rendering import render

    principal = getattr(request.state, "principal", None)
    if principal is None:
        return HTMLResponse(f"<h1>{exc.status}</h1>", status_code=exc.status)
    return render(request, "error.html", {"error": exc}, status_code=exc.status)
