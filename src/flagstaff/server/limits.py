"""Request resource limits that apply before any route runs, and the per-key stream cap.

:class:`RequestLimitsMiddleware` (inside the body-size limit, so a body it reads is already
bounded) reads each request body against a deadline, so a client that trickles its body in
(slowloris) is answered ``408 request_timeout`` and disconnected instead of holding a worker
forever.  It then checks the JSON structurally before FastAPI parses it: nesting depth, string
length, array length, object size and ``U+0000`` in strings (PostgreSQL cannot store it), plus
``U+0000`` in the path and query.  A violation is ``400 invalid`` naming the field and the
limit; the domain limits of flag and segment definitions (rules, conditions, target values,
regex length) stay in the engine's validation.

:class:`StreamConnectionLimiter` caps concurrent ``/stream`` and ``/ws`` connections per SDK key
(``429 rate_limited``).  :class:`StreamLimitMiddleware` applies it from outside the streaming
code, keyed by the SHA-256 of the bearer secret, which identifies one key exactly as its id does.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.errors import FlagstaffError, Invalid, RateLimited
from flagstaff.server import wirejson
from flagstaff.server.errors import error_payload

if TYPE_CHECKING:
    from flagstaff.server.settings import Settings

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
STREAM_PATHS = frozenset({"/stream", "/ws"})


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The structural limits for JSON request bodies and the body-read deadline."""

    max_json_depth: int = 64
    max_string_length: int = 65_536
    max_list_items: int = 100_000
    max_object_keys: int = 10_000
    body_timeout_seconds: float = 30.0
    # A body no longer than this has no string, array or object longer than a limit.
    small_body_bytes: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "small_body_bytes", min(
            self.max_string_length, self.max_list_items, self.max_object_keys))


def request_limits(settings: Settings) -> RequestLimits:
    """The limits the settings name (the server's and a relay's)."""
    return RequestLimits(
        max_json_depth=settings.max_json_depth,
        max_string_length=settings.max_string_length,
        max_list_items=settings.max_list_items,
        max_object_keys=settings.max_object_keys,
        body_timeout_seconds=settings.body_timeout_seconds,
    )


class RequestTimeout(FlagstaffError):
    status = 408
    default_code = "request_timeout"


def _error_messages(
    error: FlagstaffError, *, close: bool = False, path: str = ""
) -> list[Message]:
    body = json.dumps(error_payload(error, path)).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    if isinstance(error, RateLimited) and "retry_after_seconds" in error.details:
        headers.append((b"retry-after", str(error.details["retry_after_seconds"]).encode()))
    return [
        {"type": "http.response.start", "status": error.status, "headers": headers},
        {"type": "http.response.body", "body": body},
    ]


async def send_error(
    send: Send, error: FlagstaffError, *, close: bool = False, scope: Scope | None = None
) -> None:
    """Answer an HTTP request with ``error`` in the common shape (OFREP's on OFREP routes,
    when ``scope`` is given)."""
    path = scope.get("path", "") if scope is not None else ""
    for message in _error_messages(error, close=close, path=path):
        await send(message)


def _path_text(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "body"


def _first_violation(value: Any, limits: RequestLimits) -> FlagstaffError | None:
    """The first structural violation in a parsed JSON body, naming its path; None if fine.

    Iterative (explicit stack), so a body nested up to what ``json.loads`` accepts cannot
    exhaust the interpreter's recursion limit here.
    """
    stack: list[tuple[Any, int, list[str | int]]] = [(value, 1, [])]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, str):
            problem = _string_problem(item, limits)
            if problem:
                return _limit_error(path, problem[0], problem[1], problem[2])
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > limits.max_json_depth:
            return _limit_error(
                path, f"nested deeper than {limits.max_json_depth} levels",
                "FLAGSTAFF_MAX_JSON_DEPTH", limits.max_json_depth,
            )
        if isinstance(item, list):
            if len(item) > limits.max_list_items:
                return _limit_error(
                    path, f"has {len(item)} items; at most {limits.max_list_items} allowed",
                    "FLAGSTAFF_MAX_LIST_ITEMS", limits.max_list_items,
                )
            stack.extend((v, depth + 1, [*path, i]) for i, v in reversed(list(enumerate(item))))
            continue
        if len(item) > limits.max_object_keys:
            return _limit_error(
                path, f"has {len(item)} members; at most {limits.max_object_keys} allowed",
                "FLAGSTAFF_MAX_OBJECT_KEYS", limits.max_object_keys,
            )
        for key in item:
            problem = _string_problem(key, limits)
            if problem:
                return _limit_error([*path, key[:64]], "member name " + problem[0], problem[1], problem[2])
        stack.extend((v, depth + 1, [*path, k]) for k, v in reversed(list(item.items())))
    return None


def _string_problem(text: str, limits: RequestLimits) -> tuple[str, str, int] | None:
    if len(text) > limits.max_string_length:
        return (
            f"is {len(text)} characters; at most {limits.max_string_length} allowed",
            "FLAGSTAFF_MAX_STRING_LENGTH", limits.max_string_length,
        )
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)", "", 0
    return None


def _limit_error(path: list[str | int], problem: str, setting: str, limit: int) -> Invalid:
    field = _path_text(path)
    details: dict[str, Any] = {"field": field}
    if setting:
        details.update({"limit": limit, "setting": setting})
    return Invalid(f"{field}: {problem}", details=details)


# Where the middleware leaves the body it parsed and accepted, for a route that reads JSON
# itself (the ingestion routes: a batch of 1,000 events is not worth decoding twice).
PARSED_BODY_KEY = "flagstaff.parsed_body"
NOT_PARSED: Any = object()
# When the body must have arrived by (the event loop's clock), if a layer in front began
# reading it.
BODY_DEADLINE_KEY = "flagstaff.body_deadline"


def parse_checked_body(body: bytes, limits: RequestLimits) -> tuple[FlagstaffError | None, Any]:
    """Structural checks on a JSON body: (error, parsed body).  The parsed value is
    :data:`NOT_PARSED` unless it is acceptable JSON within every limit; bodies that are not
    JSON are left to the router."""
    if not body.strip():
        return None, NOT_PARSED
    try:
        parsed = wirejson.loads(body)
    except RecursionError:
        return Invalid(
            f"body: nested deeper than {limits.max_json_depth} levels",
            details={"field": "body", "limit": limits.max_json_depth,
                     "setting": "FLAGSTAFF_MAX_JSON_DEPTH"},
        ), NOT_PARSED
    except UnicodeDecodeError:
        return Invalid("request body is not valid UTF-8 JSON", code="invalid_json"), NOT_PARSED
    except json.JSONDecodeError:
        return None, NOT_PARSED  # the router's own answer: 400 invalid_json with the position
    except ValueError as exc:  # e.g. integers longer than Python's 4300-digit conversion limit
        return Invalid(f"request body is not acceptable JSON: {exc}", code="invalid_json"), NOT_PARSED
    if _too_small_to_break_limits(body, limits) or _within_limits(parsed, limits):
        return None, parsed
    return _first_violation(parsed, limits), NOT_PARSED


def _too_small_to_break_limits(body: bytes, limits: RequestLimits) -> bool:
    """True when the raw bytes alone show that no limit can be broken, so the parsed value
    need not be walked (a few scans at C speed; most evaluation bodies are this small).

    A string, an array or an object cannot be longer than the body; nesting needs one ``[``
    or ``{`` per level; U+0000 can only be written as ``\\u0000`` in UTF-8 JSON, and a body
    with a zero byte may be UTF-16 or -32 (whose ASCII has zero bytes), so it is walked."""
    return (
        len(body) <= limits.small_body_bytes
        and (len(body) <= limits.max_json_depth  # too short to open that many levels
             or body.count(b"{") + body.count(b"[") <= limits.max_json_depth)
        and b"\x00" not in body
        and b"\\u0000" not in body
    )


def _within_limits(value: Any, limits: RequestLimits) -> bool:
    """True when ``value`` breaks no structural limit: the fast pass over every body.

    It builds no paths (a list per item made the walk cost 4x the ``json.loads`` of the
    body); only a body that fails it is walked again by :func:`_first_violation` to name
    the field.
    """
    max_string = limits.max_string_length
    max_depth = limits.max_json_depth
    max_items = limits.max_list_items
    max_keys = limits.max_object_keys
    stack: list[tuple[Any, int]] = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, depth = pop()
        cls = item.__class__
        if cls is str:
            if len(item) > max_string or "\x00" in item:
                return False
            continue
        if cls is not dict and cls is not list:  # a scalar body: nothing to walk
            continue
        if depth > max_depth:
            return False
        if cls is list:
            if len(item) > max_items:
                return False
            children = item
        else:  # a dict: json.loads makes nothing else that has children
            if len(item) > max_keys:
                return False
            for key in item:
                if len(key) > max_string or "\x00" in key:
                    return False
            children = item.values()
        for child in children:
            c = child.__class__
            if c is str:
                if len(child) > max_string or "\x00" in child:
                    return False
            elif c is dict or c is list:
                push((child, depth + 1))
    return True


def _query_has_nul(query: bytes) -> bool:
    return b"\x00" in query or b"%00" in query.lower()


class RequestLimitsMiddleware:
    """Body-read deadline and structural JSON limits (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the next awaitable: for body-less requests this layer
        # then keeps no suspended frame (a held ``/stream`` would hold one per connection).
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        if "\x00" in scope.get("path", ""):
            return send_error(send, Invalid("the path must not contain NUL (%00)",
                                            details={"field": "path"}), scope=scope)
        if _query_has_nul(scope.get("query_string", b"")):
            return send_error(send, Invalid("query parameters must not contain NUL (%00)",
                                            details={"field": "query"}), scope=scope)
        if scope.get("method") not in _BODY_METHODS:
            return self.app(scope, receive, send)
        return self._with_body(scope, receive, send)

    async def _with_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks: list[bytes] = []
        loop = asyncio.get_running_loop()
        # A layer in front that began reading the body (the evaluation fast path) started
        # the clock: the whole body must arrive within one timeout, not one per reader.
        deadline = scope.get(BODY_DEADLINE_KEY) or loop.time() + self.limits.body_timeout_seconds
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await send_error(
                    send,
                    RequestTimeout(
                        f"the request body did not arrive within {self.limits.body_timeout_seconds:g} s",
                        details={"limit_seconds": self.limits.body_timeout_seconds,
                                 "setting": "FLAGSTAFF_BODY_TIMEOUT_SECONDS"},
                    ),
                    close=True, scope=scope,
                )
                return
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        error, parsed = parse_checked_body(body, self.limits)
        if error is not None:
            await send_error(send, error, scope=scope)
            return
        if parsed is not NOT_PARSED:
            scope[PARSED_BODY_KEY] = parsed

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class StreamConnectionLimiter:
    """Counts open stream connections per SDK key; thread-safe, in-process."""

    def __init__(self, max_per_key: int) -> None:
        self.max_per_key = max_per_key
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: str) -> bool:
        """Take a slot for ``key_id``; False (take nothing) when the key is at its cap."""
        with self._lock:
            current = self._open.get(key_id, 0)
            if current >= self.max_per_key:
                return False
            self._open[key_id] = current + 1
            return True

    def release(self, key_id: str) -> None:
        with self._lock:
            current = self._open.get(key_id, 0) - 1
            if current > 0:
                self._open[key_id] = current
            else:
                self._open.pop(key_id, None)

    def open_connections(self, key_id: str) -> int:
        with self._lock:
            return self._open.get(key_id, 0)


def stream_key_id(scope: Scope) -> str | None:
    """The SHA-256 of the bearer secret (one per SDK key), or None without one."""
    for name, value in scope.get("headers") or []:
        if name == b"authorization":
            scheme, _, secret = value.partition(b" ")
            if scheme.lower() == b"bearer" and secret.strip():
                return hashlib.sha256(secret.strip()).hexdigest()
    return None


class StreamLimitMiddleware:
    """``429 rate_limited`` for a ``/stream`` or ``/ws`` connection over the per-key cap."""

    def __init__(self, app: ASGIApp, *, limiter: StreamConnectionLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") not in STREAM_PATHS:
            await self.app(scope, receive, send)
            return
        key_id = stream_key_id(scope)
        if key_id is None:
            await self.app(scope, receive, send)  # answered 401 by the route
            return
        if not self.limiter.acquire(key_id):
            error = RateLimited(
                f"this SDK key already has {self.limiter.max_per_key} open stream connections",
                details={"limit": self.limiter.max_per_key, "retry_after_seconds": 5,
                         "setting": "FLAGSTAFF_MAX_STREAMS_PER_KEY"},
            )
            if scope["type"] == "http":
                await send_error(send, error)
            else:
                await deny_websocket(scope, send, error, reason="too many streams")
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release(key_id)


async def deny_websocket(scope: Scope, send: Send, error: FlagstaffError, *, reason: str) -> None:
    """Refuse a WebSocket handshake with ``error``'s HTTP status, headers (``Retry-After``) and
    the common JSON body (the ASGI denial-response extension, which uvicorn has).  Without the
    extension the handshake is closed with 1013 "try again later" and ``reason``."""
    if "websocket.http.response" in scope.get("extensions", {}):
        start, body = _error_messages(error)
        await send({**start, "type": "websocket.http.response.start"})
        await send({**body, "type": "websocket.http.response.body"})
    else:
        await send({"type": "websocket.close", "code": 1013, "reason": reason})
