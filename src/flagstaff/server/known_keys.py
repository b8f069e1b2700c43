"""Who is asking, from the ``Authorization`` header alone: the evaluation fast path's keys.

The token cache knows live keys by the digest of their secret (``token_cache.py``); what an
evaluation needs of a key (its principal, whether it is client-side, the environment it
evaluates in) is derived from the cache's entry once and kept beside the entry it came from.
It is used only while the cache answers with that very entry: a revocation, an expiry or a
reread replaces the entry, and with it everything derived.  Keys are known by digest here too,
never by secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from flagstaff.browser.guard import SdkKey
from flagstaff.errors import FlagstaffError
from flagstaff.server import evaluation
from flagstaff.server.auth import SDK_CLIENT, Principal, principal_from
from flagstaff.server.browser.guard import sdk_key_of
from flagstaff.server.token_cache import CacheEntry, TokenCache, digest_of

MAX_KEYS = 10_000  # keys remembered; beyond it the memo starts over


@dataclass(frozen=True, slots=True)
class Caller:
    """What a key's evaluation requests need, derived from one token-cache entry."""

    entry: CacheEntry
    principal: Principal
    client: bool
    environment: str | None  # its OFREP environment; None: the route says why it has none
    key: SdkKey  # as the browser checks name it

    @classmethod
    def of(cls, entry: CacheEntry) -> Caller:
        principal = principal_from(entry.record)
        try:
            environment: str | None = evaluation.environment_for(principal, None)
        except FlagstaffError:
            environment = None
        return cls(entry, principal, principal.kind == SDK_CLIENT, environment,
                   sdk_key_of(principal))


class KnownKeys:
    """The callers of live keys, for one token cache (one app lifespan)."""

    def __init__(self, cache: TokenCache) -> None:
        self.cache = cache
        self._callers: dict[str, Caller] = {}

    def caller(self, authorization: bytes | None) -> Caller | None:
        """The caller behind an ``Authorization`` header, if the cache knows its key live."""
        if authorization is None:
            return None
        # The framework's reading (fastapi.security.utils.get_authorization_scheme_param).
        scheme, _, secret = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not secret:
            return None
        digest = digest_of(secret.decode("latin-1"))  # the header's text, as the routes read it
        entry = self.cache.entry(digest)
        if entry is None:
            return None
        caller = self._callers.get(digest)
        if caller is None or caller.entry is not entry:
            caller = Caller.of(entry)
            if len(self._callers) >= MAX_KEYS:
                self._callers.clear()
            self._callers[digest] = caller
        return caller
