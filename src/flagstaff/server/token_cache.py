"""Live tokens in memory for the evaluation routes, kept current by the change feed.

Evaluation is the highest-volume thing a server does (browsers, OFREP providers), and looking
the bearer token up in the database on every request was most of its cost.  A
:class:`TokenCache` remembers the tokens it has seen live, by the SHA-256 of their secret (never
the secret), for ``ttl_seconds`` at most; the database is asked on a miss, after the time to
live (which also keeps ``last_used_at`` ticking), and never for a token it does not know (a key
created on another replica works at once).  Revocations reach it through the change log
(``token_revoked``), like the streams they end: each replica's change feed hands every page of
changes to :meth:`TokenCache.on_changes`, so a revoked key stops working within the feed's
propagation bound (docs/streaming.md, "Replicas").  A lookup that raced with a revocation is
never cached: the ids of revoked keys are remembered.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from flagstaff.realtime import Change
from flagstaff.realtime.events import revoked_credential

if TYPE_CHECKING:
    from flagstaff.store import Store, TokenRecord

# Entries beyond this are dropped oldest first: a flood of distinct valid keys cannot grow it.
MAX_ENTRIES = 50_000


@dataclass(frozen=True, slots=True)
class CacheEntry:
    record: TokenRecord
    read_at: float  # when the database read that found it began


class TokenCache:
    def __init__(
        self, store: Store, *, ttl_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, CacheEntry] = {}
        self._revoked: set[str] = set()
        # Entries read before this moment are checked again: this process served a write
        # (a revocation through it must hold for its very next request, before the feed).
        self._valid_from = float("-inf")

    def mark_stale(self) -> None:
        """This process served a write: check every key against the database once more."""
        self._valid_from = self._clock()

    def cached(self, secret: str) -> TokenRecord | None:
        """The live token for ``secret`` if this process knows it (no I/O), else None."""
        entry = self.entry(digest_of(secret))
        return None if entry is None else entry.record

    def entry(self, digest: str) -> CacheEntry | None:
        """The live entry for a secret's :func:`digest_of`, else None.  An entry is immutable
        and replaced when its token is read again, so a caller may derive things from one and
        trust them for as long as this returns the same entry."""
        entry = self._entries.get(digest)
        if entry is None or entry.read_at < self._valid_from \
                or entry.read_at + self._ttl <= self._clock():
            return None
        return entry

    async def authenticate(self, secret: str) -> TokenRecord | None:
        """The live token for ``secret`` (None: unknown or revoked), from memory when known."""
        if not secret:
            return None
        record = self.cached(secret)
        if record is not None:
            return record
        began = self._clock()
        record = await anyio.to_thread.run_sync(partial(self._store.authenticate, secret=secret))
        if record is not None and record.id not in self._revoked:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[digest_of(secret)] = CacheEntry(record, began)
        return record

    def forget(self, token_id: str) -> None:
        """A key was revoked: never answer for it from memory again."""
        self._revoked.add(token_id)
        for digest in [d for d, e in self._entries.items() if e.record.id == token_id]:
            del self._entries[digest]

    async def on_changes(self, _feed: Any, page: Sequence[Change]) -> None:
        """A change-feed observer (``app.state.change_observers``)."""
        for event in page:
            token_id = revoked_credential(event)
            if token_id is not None:
                self.forget(token_id)


def digest_of(secret: str) -> str:
    """What the cache knows a secret by."""
    return hashlib.sha256(secret.encode()).hexdigest()
