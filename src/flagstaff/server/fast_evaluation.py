"""The fast path of remote evaluation: a clean evaluation answered in front of the framework.

Evaluation is the call a server gets most (every page view of every browser, every OFREP
provider's poll), and once the key and the snapshot came from memory most of an answer's cost
was the framework around it: ten middleware layers, each with its own wrappers, routing,
dependency solving and request models.  :class:`EvaluationFastPath`, in front of the whole app
(the framework's own outer layers included), takes ``POST`` on the evaluation routes (OFREP single and bulk, ``/evaluate``,
``/evaluate/all``) and answers those it can answer entirely from memory, with the functions the
routes use (:mod:`flagstaff.server.evaluation`, ``browser/guard.py``): the key from the
token cache, the origin and secure-mode checks, the body within its size, time and structure
limits, the snapshot from the change-fed cache, the bulk ETag and 304.  It also does what the
layers it passes by do for such an answer: the ``X-Request-ID`` header, CORS headers, the
latency histogram in ``/metrics``, the access-log policy, the block of an address with too many
authentication failures.

Anything else goes on to the app, with whatever body was read handed on unchanged, and the route
answers it as documented: a key or snapshot not in memory (which the route then loads), a query
string, a duplicated header, an unusual content type, a body that is too large, late or not
JSON, and every refusal or invalid input (so error shapes, 401s counted by the rate limiter and
refusals logged are the routes' own).  The fast path changes how soon an answer comes, never
what it is; ``FLAGSTAFF_EVALUATION_FAST_PATH=false`` turns it off.

Per request it only compares: what a key needs (its principal, kind and OFREP environment) is
derived once per token-cache entry and used while the cache answers with that same entry (a
revocation, expiry or reread replaces the entry, and with it what was derived); the app's
state is bound once per lifespan; answers are put together from the snapshot's remembered
encodings (``evaluation.ofrep_bulk``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flagstaff.browser import guard
from flagstaff.browser.cors import cors_headers
from flagstaff.errors import FlagstaffError
from flagstaff.numerals import ascii_int
from flagstaff.server import evaluation
from flagstaff.server.browser.access import AccessPolicy
from flagstaff.server.browser.guard import checked_context_of
from flagstaff.server.etags import none_match
from flagstaff.server.known_keys import Caller, KnownKeys
from flagstaff.server.limits import BODY_DEADLINE_KEY, NOT_PARSED, RequestLimits, parse_checked_body
from flagstaff.server.logging_setup import request_id_var
from flagstaff.server.middleware import (
    REQUEST_ID_HEADER,
    AccessLogPolicy,
    log_request,
    new_request_id,
    request_id_from,
)
from flagstaff.server.models import EvaluateAllIn, EvaluateIn
from flagstaff.server.ofrep_context import context_of
from flagstaff.server.ratelimit import client_ip
from flagstaff.server.read_deadlines import ReadDeadlines

if TYPE_CHECKING:
    from flagstaff.browser.cors import RefusalLog
    from flagstaff.browser.visibility import ClientView
    from flagstaff.server.browser.eventstream import OfrepStreams
    from flagstaff.server.ratelimit import AuthFailureLimiter
    from flagstaff.server.snapshots import CachedSnapshot, SnapshotCache

log = logging.getLogger("flagstaff.server.fast_evaluation")

OFREP_BULK = "/ofrep/v1/evaluate/flags"
OFREP_SINGLE = "/ofrep/v1/evaluate/flags/{key}"
_SINGLE_PREFIX = OFREP_BULK + "/"
EVALUATE = "/evaluate"
EVALUATE_ALL = "/evaluate/all"
MAX_KEY_LENGTH = 128  # the route's ``Path(max_length=128)``
MAX_ORIGINS = 10_000  # origins whose CORS headers are remembered; beyond it the memo starts over

# The request headers an answer depends on; a request that repeats one of them goes to the
# app (the layers there do not all pick the same one of two).
_HEADERS = frozenset({
    b"authorization", b"origin", b"content-type", b"content-length", b"transfer-encoding",
    b"if-none-match", b"x-request-id",
})
_JSON = b"application/json"
_JSON_HEADER = (b"content-type", _JSON)


# (status, body, headers): a tuple, as the answer is built once and then only read
_Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class _Bound:
    """What this layer reads of the app's state, bound once per lifespan."""

    policy: AccessPolicy
    refusals: RefusalLog
    failures: AuthFailureLimiter
    snapshots: SnapshotCache
    client_view: ClientView
    ofrep_streams: OfrepStreams
    installation: str
    metrics: Any
    keys: KnownKeys
    deadlines: ReadDeadlines  # on the lifespan's event loop


class _NotHere(Exception):
    """This request is not one the fast path answers: the app does."""


class EvaluationFastPath:
    """In front of the app: serves clean evaluation requests from memory (module docstring)."""

    def __init__(
        self, app: ASGIApp, *, state: Any, limits: RequestLimits, max_body_bytes: int,
        access_log: AccessLogPolicy,
    ) -> None:
        self.app = app
        self.state = state  # the app's state: caches and policies appear there at startup
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log
        # (route, status) -> (its latency series, whether the access log has a line for it)
        self._accounts: dict[tuple[str, int], tuple[Any, bool]] = {}
        self._reloading: asyncio.Future[None] | None = None
        self._bound: _Bound | None = None
        self._cors: dict[str, list[tuple[bytes, bytes]]] = {}

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function: anything else passes with no frame of this layer kept (/stream).
        if scope["type"] != "http" or scope["method"] != "POST":
            return self.app(scope, receive, send)
        route = _route(scope["path"])
        if route is None or scope.get("query_string") or scope.get("root_path"):
            return self.app(scope, receive, send)
        return self._serve(scope, receive, send, route)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, route: str) -> None:
        started = time.perf_counter()
        headers = _request_headers(scope)
        bound = self._bind()
        if bound is not None and not bound.policy.fresh():
            await self._reload(bound.policy)
            if not bound.policy.fresh():
                bound = None  # still stale: the route reads it (and reports a failure)
        caller = None if headers is None or bound is None else self._caller(bound, scope, headers)
        if caller is None:
            await self.app(scope, receive, send)
            return
        assert headers is not None and bound is not None
        read, body = await self._read_body(bound, scope, receive, headers)
        answer = None
        if body is not None:
            try:
                answer = self._answer(bound, scope, route, headers, caller, body)
            except (_NotHere, FlagstaffError, ValidationError):
                pass  # the route gives the documented answer
            except Exception:
                log.warning("the evaluation fast path failed; the route answers instead",
                            exc_info=True)
        if answer is None:
            await self.app(scope, _replaying(read, receive), send)
            return
        status, raw, answer_headers = answer
        request_id = self._finish(bound, headers, answer_headers)
        await send({"type": "http.response.start", "status": status, "headers": answer_headers})
        await send({"type": "http.response.body", "body": raw})
        self._account(bound, scope, status, started, route, request_id)

    def unbind(self) -> None:
        """The app's lifespan ended: a new one builds new caches, to be bound afresh."""
        self._bound = None
        self._accounts.clear()  # the next lifespan has its own metrics

    def _bind(self) -> _Bound | None:
        """The app's state this layer reads, once startup has put all of it there."""
        bound = self._bound
        if bound is not None:
            return bound
        state = self.state
        try:
            bound = _Bound(
                policy=state.access_policy, refusals=state.cors_refusals,
                failures=state.auth_failure_limiter, snapshots=state.snapshots,
                client_view=state.client_view, ofrep_streams=state.ofrep_streams,
                installation=state.installation_id, metrics=state.realtime.metrics,
                keys=KnownKeys(state.token_cache),
                deadlines=ReadDeadlines(asyncio.get_running_loop()),
            )
        except AttributeError:
            return None  # not started yet: the routes answer (and say so)
        self._bound = bound
        return bound

    async def _reload(self, policy: AccessPolicy) -> None:
        """Reload the browser access policy in a worker thread, as the routes do, once for all
        the requests that find it due (they wait for the same reload)."""
        reloading = self._reloading
        if reloading is None or reloading.done():
            reloading = asyncio.ensure_future(anyio.to_thread.run_sync(policy.load))
            reloading.add_done_callback(_retrieved)
            self._reloading = reloading
        with contextlib.suppress(Exception):  # still stale: the route answers
            await asyncio.shield(reloading)

    def _caller(self, bound: _Bound, scope: Scope, headers: dict[bytes, bytes]) -> Caller | None:
        """The key's caller from memory, when nothing before the route would answer."""
        if bound.failures.tracking and bound.failures.retry_after(client_ip(scope)) is not None:
            return None  # blocked: 429 from the rate limiter
        declared = headers.get(b"content-length")
        if declared is not None:
            size = ascii_int(declared, max_digits=30)
            if size is None or size > self.max_body_bytes:
                return None  # 413 from the body limit, or 400 for a malformed length
        return bound.keys.caller(headers.get(b"authorization"))

    async def _read_body(
        self, bound: _Bound, scope: Scope, receive: Receive, headers: dict[bytes, bytes],
    ) -> tuple[list[Message], bytes | None]:
        """(the messages read, the whole body or None when the app must take over).  The body
        must arrive within the body timeout, as the request limits require (kept by
        :class:`~flagstaff.server.read_deadlines.ReadDeadlines`: a timer per request cost more
        than reading the body)."""
        read: list[Message] = []
        if b"content-length" not in headers and b"transfer-encoding" not in headers:
            return read, b""  # HTTP/1.1 frames no body without them
        deadlines = bound.deadlines
        deadline = deadlines.deadline(self.limits.body_timeout_seconds)
        size = 0
        while True:
            message = await deadlines.receive(receive, deadline)
            if message is None:
                scope[BODY_DEADLINE_KEY] = deadline  # 408 from the request limits, at once
                return read, None
            read.append(message)
            if message["type"] != "http.request":
                return read, None  # the client left
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return read, None
            if not message.get("more_body", False):
                break
        if len(read) == 1:
            return read, read[0].get("body", b"")
        return read, b"".join(m.get("body", b"") for m in read)

    def _answer(
        self, bound: _Bound, scope: Scope, route: str, headers: dict[bytes, bytes],
        caller: Caller, body: bytes,
    ) -> _Answer | None:
        error, parsed = parse_checked_body(body, self.limits)
        if error is not None:
            return None
        origin = _text(headers.get(b"origin"))
        path = scope["path"]
        principal, client = caller.principal, caller.client
        if route is OFREP_BULK or route is OFREP_SINGLE:
            key = path[len(_SINGLE_PREFIX):] if route is OFREP_SINGLE else None
            if parsed is NOT_PARSED:
                if body.strip():
                    return None  # not JSON: PARSE_ERROR from the route
                parsed = {}
            context = context_of(parsed, key)
            environment = caller.environment
            if environment is None:
                return None  # no environment of its own: the route says why
            if origin is not None:  # requests without one are not from a page
                guard.check_origin(bound.policy, bound.refusals, origin=origin, path=path,
                                   key=caller.key, environment=environment)
            context = checked_context_of(bound.policy, principal, environment, context)
            cached = _current(bound, environment)
            if key is not None:
                status, raw = evaluation.ofrep_single(cached.snapshot, key, context, client=client,
                                                      memo=cached.encoded)
                return status, raw, [_length(raw), _JSON_HEADER]
            raw, tag = evaluation.ofrep_bulk(
                cached.snapshot, bound.client_view, context, client=client,
                installation=bound.installation,
                event_streams=bound.ofrep_streams.event_streams("", principal),
                memo=cached.encoded)
            etag = (b"etag", tag.encode("latin-1"))
            if none_match(_text(headers.get(b"if-none-match")), tag):
                return 304, b"", [etag]
            return 200, raw, [etag, _length(raw), _JSON_HEADER]
        if parsed is NOT_PARSED or not _json_content(headers.get(b"content-type")):
            return None  # missing, not JSON or not sent as JSON: the route says which
        if route == EVALUATE:
            one = EvaluateIn.model_validate(parsed, from_attributes=True)
            environment = evaluation.environment_for(principal, one.environment)
            guard.check_origin(bound.policy, bound.refusals, origin=origin, path=path,
                               key=caller.key, environment=environment)
            context = checked_context_of(bound.policy, principal, environment, one.context)
            payload = evaluation.evaluate_one(
                _current(bound, environment).snapshot, one, context, client=client)
            raw = evaluation.evaluation_out_json(payload)
        else:
            every = EvaluateAllIn.model_validate(parsed, from_attributes=True)
            environment = evaluation.environment_for(principal, every.environment)
            guard.check_origin(bound.policy, bound.refusals, origin=origin, path=path,
                               key=caller.key, environment=environment)
            context = checked_context_of(bound.policy, principal, environment, every.context)
            payload = evaluation.evaluate_all(
                _current(bound, environment), bound.client_view, environment, context,
                client=client)
            raw = evaluation.evaluations_out_json(payload)
        return 200, raw, [_length(raw), _JSON_HEADER]

    def _finish(
        self, bound: _Bound, headers: dict[bytes, bytes], answer_headers: list[tuple[bytes, bytes]],
    ) -> str:
        """Add what the layers in front of the routes add to an answer's headers: CORS for an
        allowed origin, the request id (returned)."""
        origin = headers.get(b"origin")
        if origin is not None:
            text = origin.decode("latin-1")
            if bound.policy.origin_known(text):
                answer_headers += self._cors_headers(text)
        given = headers.get(REQUEST_ID_HEADER)
        request_id = new_request_id() if given is None else request_id_from(given)
        answer_headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
        return request_id

    def _account(
        self, bound: _Bound, scope: Scope, status: int, started: float, route: str,
        request_id: str,
    ) -> None:
        """Count the answer sent (and log it if the access-log policy says so)."""
        elapsed = time.perf_counter() - started
        account = self._accounts.get((route, status))
        if account is None:
            account = self._account_of(bound, route, status)
        series, logs = account
        series.observe(elapsed)
        if logs:
            token = request_id_var.set(request_id)
            try:
                log_request("POST", scope["path"], status, round(elapsed * 1000, 2))
            finally:
                request_id_var.reset(token)

    def _account_of(self, bound: _Bound, route: str, status: int) -> tuple[Any, bool]:
        # The series the latency middleware observes for the same route (a POST to an
        # evaluation route commits nothing, so there is no write to announce), and the access
        # log's decision, which for these routes depends on the status alone: every path of
        # a route is an SDK route when its template is.
        account = (bound.metrics.request_latency.labels(method="POST", route=route,
                                                        status=str(status)),
                   self.access_log.logs(route, status))
        self._accounts[(route, status)] = account
        return account

    def _cors_headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        # The same few origins ask again and again; an origin's headers never change.
        found = self._cors.get(origin)
        if found is None:
            found = cors_headers(origin)
            if len(self._cors) >= MAX_ORIGINS:
                self._cors.clear()
            self._cors[origin] = found
        return found


def _route(path: str) -> str | None:
    """The route template of an evaluation path, or None."""
    if path == OFREP_BULK:
        return OFREP_BULK
    if path == EVALUATE:
        return EVALUATE
    if path == EVALUATE_ALL:
        return EVALUATE_ALL
    if path.startswith(_SINGLE_PREFIX):
        key = path[len(_SINGLE_PREFIX):]
        if key and "/" not in key and "\x00" not in key and len(key) <= MAX_KEY_LENGTH:
            return OFREP_SINGLE
    return None


def _request_headers(scope: Scope) -> dict[bytes, bytes] | None:
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in _HEADERS:
            if name in found:
                return None
            found[name] = value
    return found


def _current(bound: _Bound, environment: str) -> CachedSnapshot:
    cached = bound.snapshots.current(environment)
    if cached is None:
        raise _NotHere  # the route reads it from the database, in a thread
    return cached


def _json_content(value: bytes | None) -> bool:
    """Whether the framework parses a body sent with this ``Content-Type`` as JSON (absent or
    ``application/json``; the rarer ``+json`` types are left to the route)."""
    return value is None or value.partition(b";")[0].strip().lower() == _JSON


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", b"%d" % len(body))


def _retrieved(future: asyncio.Future[Any]) -> None:
    # A failed reload is the route's to report (it reloads again); never "never retrieved".
    if not future.cancelled():
        future.exception()


def _replaying(read: list[Message], receive: Receive) -> Receive:
    """``receive`` that first hands on the messages the fast path already took."""
    pending = list(read)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
