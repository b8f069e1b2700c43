"""Sign-in and sign-out, the console's static files and its live-update stream.

Sign-in is a plain HTML form (it works before any script runs).  It is protected against
login CSRF by a nonce cookie that the form must echo.  A wrong token is a ``401``, which counts
as an authentication failure of the client's address in the API's limiter (``ratelimit``); once
the address is over the limit every sign-in, even with a valid token, is refused with ``429``,
``Retry-After`` and the message next to the token field until the window ends.

``/ui/events`` is a Server-Sent Events stream authenticated by the session cookie: it
subscribes to the change feed and forwards each change so that open pages refresh the
affected row or section.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from flagstaff.errors import NotFound
from flagstaff.realtime.sse import EventStreamResponse
from flagstaff.server.console.rendering import STATIC, render
from flagstaff.server.console.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleRoute,
    check_csrf,
    clear_cookie,
    current,
    new_nonce,
    principal_for,
    set_cookie,
)
from flagstaff.server.ratelimit import AuthFailureLimiter, client_ip

router = APIRouter(route_class=ConsoleRoute)

MAX_FORM_BYTES = 8192
# Never one of an environment's keys (they cannot contain "~"), so deleting an environment
# never ends the console's stream; flag events are delivered whatever the environment.
CONSOLE_CHANNEL = "~console"
_STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _safe_next(target: str | None) -> str:
    # Only console paths: an open redirect to another site would help phishing.
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui"


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _login_page(request: Request, *, next_url: str, error: str | None, status: int) -> Response:
    nonce = new_nonce()
    response = render(
        request, "login.html", {"nonce": nonce, "next": next_url, "error": error},
        status_code=status,
    )
    set_cookie(response, request, LOGIN_COOKIE, nonce)
    return response


def _blocked_page(request: Request, *, next_url: str) -> Response | None:
    """The sign-in page refusing a client address over the auth-failure limit, else None."""
    limiter: AuthFailureLimiter | None = getattr(request.app.state, "auth_failure_limiter", None)
    seconds = None if limiter is None else limiter.retry_after_seconds(client_ip(request.scope))
    if seconds is None:
        return None
    response = _login_page(
        request, next_url=next_url, status=429,
        error=f"Too many failed sign-ins from your address. Try again in {seconds} seconds.",
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    next_url = _safe_next(next)
    blocked = _blocked_page(request, next_url=next_url)
    if blocked is not None:
        return blocked
    return _login_page(request, next_url=next_url, error=None, status=200)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    next_url = _safe_next(form.get("next"))
    # Before the token is looked at: a guesser must not learn which guess was right.
    blocked = _blocked_page(request, next_url=next_url)
    if blocked is not None:
        return blocked
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(form.get("nonce", "").encode(), nonce.encode()):
        return _login_page(
            request, next_url=next_url, status=403,
            error="The sign-in form expired. Please try again.",
        )
    secret = form.get("token", "").strip()
    principal = principal_for(request, secret) if secret else None
    if principal is None:
        return _login_page(
            request, next_url=next_url, status=401,
            error="Unknown or revoked token. Use a management token (fsm_...).",
        )
    response = RedirectResponse(next_url, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, secret)
    clear_cookie(response, request, LOGIN_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    check_csrf(request, form.get("csrf"))
    response = RedirectResponse("/ui/login", status_code=303)
    clear_cookie(response, request, SESSION_COOKIE)
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    path = STATIC / name
    media_type = _STATIC_TYPES.get(path.suffix)
    if media_type is None or "/" in name or name.startswith(".") or not path.is_file():
        raise NotFound(f"no static file {name!r}")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})


@router.get("/events")
async def events(request: Request) -> Response:
    """Live changes for open console pages (authenticated by the session cookie)."""
    from starlette.concurrency import run_in_threadpool

    await run_in_threadpool(current, request)
    feed = request.app.state.realtime.require_feed()
    subscriber = feed.subscribe(environment=CONSOLE_CHANNEL, transport="console")
    return EventStreamResponse(
        feed=feed, subscriber=subscriber, initial=[], sent_up_to=feed.cursor
    )
