"""Pages at the relay: client-side keys, CORS, secure mode and OFREP event streams.

A relay serves pages as the server does (docs/browser.md), with the server's own rules
(:mod:`flagstaff.browser`): the environment's origins and secure mode come from the upstream
(:mod:`flagstaff.relay.access`), client-side keys see ``client_side`` flags only, and the bulk
OFREP answer names an event stream at the relay (``/ofrep/v1/event-stream?token=...``) that
sends ``refetchEvaluation`` when a change the relay applied can alter the page's answers.

The relay signs its stream URLs with a key derived from its own SDK keys, so relays started
with the same keys (several behind one load balancer) accept each other's URLs, and a URL names
the downstream key by id: the stream checks that the key is still live when it connects, as the
server does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.datastructures import Headers, QueryParams
from starlette.responses import Response

from flagstaff.browser import guard
from flagstaff.browser.cors import RefusalLog
from flagstaff.browser.ofrep_stream import descriptor, publish, subscribe
from flagstaff.browser.refetch import RefetchTracker
from flagstaff.browser.stream_tokens import TOKEN_PARAM, StreamTokens
from flagstaff.browser.visibility import ClientView
from flagstaff.errors import Unauthorized, Unavailable
from flagstaff.realtime import Change, ChangeFeed, parse_last_event_id
from flagstaff.relay.access import RelayAccess
from flagstaff.relay.keys import SDK_CLIENT, KeyEntry

if TYPE_CHECKING:
    from flagstaff.relay.service import Relay

_SIGNING_CONTEXT = b"flagstaff relay event-stream URLs"


def signing_key(keys: Sequence[str]) -> str:
    """The key event-stream URLs are signed with: the same for relays with the same keys."""
    material = "\n".join(sorted(set(keys))).encode()
    return hmac.new(_SIGNING_CONTEXT, material, hashlib.sha256).hexdigest()


class RelayPages:
    """What serving pages needs at one relay, beside its :class:`RelayAccess`."""

    def __init__(self, *, access: RelayAccess, keys: Sequence[str], window_seconds: int) -> None:
        self.access = access
        self.refusals = RefusalLog()
        self.view = ClientView()
        secret = signing_key(keys)
        self.tokens = StreamTokens(secret, window_seconds=window_seconds)
        # Event-stream ETags name the relay's URL family, not a database: a page re-fetches
        # from the relay that woke it, which has applied the change by then.
        self.tracker = RefetchTracker(installation_id="relay-" + secret[:6])

    def check_origin(self, entry: KeyEntry, *, origin: str | None, path: str) -> None:
        """The server's origin check for a request with ``entry`` (503 for a client-side key
        while the environment's access is not known yet)."""
        if entry.kind == SDK_CLIENT:
            self.access.require(entry.environment)
        guard.check_origin(self.access, self.refusals, origin=origin, path=path,
                           key=guard.SdkKey(entry.kind, entry.token_id),
                           environment=entry.environment)

    def checked_context(
        self, entry: KeyEntry, *, origin: str | None, path: str, context: dict[str, Any],
    ) -> dict[str, Any]:
        """The server's page checks for a request with ``entry`` (origin, secure mode), and
        the context to evaluate."""
        self.check_origin(entry, origin=origin, path=path)
        return guard.checked_context(self.access, kind=entry.kind,
                                     environment=entry.environment, context=context)

    def event_streams(self, root_path: str, entry: KeyEntry) -> list[dict[str, Any]]:
        token = self.tokens.issue(token_id=entry.token_id, environment=entry.environment)
        return descriptor(root_path, token)

    async def on_changes(self, feed: ChangeFeed, page: Sequence[Change]) -> None:
        await publish(self.tracker, feed, page)

    async def open(self, relay: Relay, headers: Headers, query: QueryParams,
                   path: str) -> Response:
        """Subscribe the event-stream connection a request asks for, or raise why not."""
        grant = self.tokens.verify(query.get(TOKEN_PARAM))
        if grant is None:
            raise Unauthorized(
                "this event-stream URL is not valid or has expired: re-fetch the bulk "
                "evaluation for a new one")
        entry = relay.keys.by_token_id(grant.token_id)
        if entry is None or entry.environment != grant.environment:
            raise Unauthorized("the key this event stream was issued for is revoked")
        held = relay.serving(grant.environment)
        if held is None or not held[0].ready or held[0].rejected:
            raise Unavailable(f"the relay does not serve {grant.environment!r} now")
        self.check_origin(entry, origin=headers.get("origin"), path=path)
        after_id = parse_last_event_id(headers.get("last-event-id"), field="Last-Event-ID")
        return await subscribe(self.tracker, held[1], environment=grant.environment,
                               client=entry.kind == SDK_CLIENT, after_id=after_id,
                               credential=grant.token_id)
