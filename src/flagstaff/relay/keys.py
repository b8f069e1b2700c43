"""Which SDK keys the relay accepts: the upstream's word, remembered and persisted.

Downstream clients use their own SDK keys at the relay, exactly as at the server.  The relay
never sees the key table: it asks its upstream (``POST /relay/keys``, with the SHA-256 digests
of the keys it was shown, never the keys) and remembers each answer for ``ttl`` seconds.
Every ``ttl`` it asks again about every key it knows, so a revoked key stops working at the
relay within ``ttl`` (plus one round trip), and its open streams end then.  The answers are
persisted in the data directory: with the upstream away, a key the upstream vouched for keeps
working (and the relay's own keys always do), while a key never seen before is refused with
503 (the relay cannot tell whether it is valid).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from flagstaff.errors import Unavailable
from flagstaff.relay.upstream import Rejected, Unreachable, Upstream

log = logging.getLogger("flagstaff.relay")

SDK_SERVER = "sdk-server"
SDK_CLIENT = "sdk-client"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyEntry:
    kind: str
    environment: str
    token_id: str
    checked_at: float  # wall-clock seconds of the upstream's answer


class KeyRing:
    def __init__(
        self,
        *,
        upstream: Upstream | None,
        own: Sequence[str],
        own_environment: Callable[[str], str | None],
        ttl: float,
        on_revoked: Callable[[str], None],
        on_changed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._upstream = upstream
        # The relay's own keys (the ones it follows the upstream with), by digest.
        self._own = {digest(k): k for k in own}
        self._own_environment = own_environment
        self._ttl = ttl
        self._on_revoked = on_revoked
        self._on_changed = on_changed
        self._clock = clock
        self._entries: dict[str, KeyEntry] = {}
        self._asking: dict[str, asyncio.Future[KeyEntry | None]] = {}

    # -- persistence ---------------------------------------------------------------------

    def load(self, saved: dict[str, dict[str, Any]]) -> None:
        for key_digest, fields in saved.items():
            try:
                self._entries[key_digest] = KeyEntry(
                    kind=str(fields["kind"]), environment=str(fields["environment"]),
                    token_id=str(fields["token_id"]), checked_at=float(fields["checked_at"]),
                )
            except (KeyError, TypeError, ValueError):
                continue

    def dump(self) -> dict[str, Any]:
        return {"keys": {d: asdict(e) for d, e in self._entries.items()}}

    # -- lookups -------------------------------------------------------------------------

    async def lookup(self, secret: str) -> KeyEntry | None:
        """The live key for ``secret`` (None: unknown or revoked); raises
        :class:`~flagstaff.errors.Unavailable` when only the unreachable upstream could tell."""
        key_digest = digest(secret)
        entry = self._entries.get(key_digest)
        if entry is not None and entry.checked_at + self._ttl > self._clock():
            return entry
        pending = self._asking.get(key_digest)
        if pending is None:
            pending = asyncio.ensure_future(self._ask_one(key_digest))
            self._asking[key_digest] = pending
            pending.add_done_callback(lambda _f: self._asking.pop(key_digest, None))
        return await asyncio.shield(pending)

    async def _ask_one(self, key_digest: str) -> KeyEntry | None:
        known = self._entries.get(key_digest)
        try:
            answer = await self._ask([key_digest])
        except Rejected:
            # The upstream refuses every key of this relay (revoked): nothing it vouched for
            # before may be trusted any more.
            raise Unavailable("the upstream refuses this relay's keys") from None
        except Unreachable:
            if known is not None:
                return known  # offline: the upstream's last word
            own = self._own_entry(key_digest)
            if own is not None:
                return own
            raise Unavailable(
                "the relay cannot reach its upstream to check this key; try again later"
            ) from None
        return self._record(key_digest, answer.get(key_digest))

    def _own_entry(self, key_digest: str) -> KeyEntry | None:
        if key_digest not in self._own:
            return None
        environment = self._own_environment(key_digest)
        if environment is None:
            return None
        return KeyEntry(SDK_SERVER, environment, f"relay-key-{key_digest[:16]}", 0.0)

    def _record(self, key_digest: str, fields: dict[str, Any] | None) -> KeyEntry | None:
        before = self._entries.get(key_digest)
        if fields is None:
            if before is not None:
                del self._entries[key_digest]
                self._on_changed()
                self._on_revoked(before.token_id)
            return None
        entry = KeyEntry(
            kind=str(fields["kind"]), environment=str(fields["environment"]),
            token_id=str(fields["token_id"]), checked_at=self._clock(),
        )
        self._entries[key_digest] = entry
        if before is None or (before.kind, before.environment, before.token_id) != (
                entry.kind, entry.environment, entry.token_id):
            self._on_changed()
        return entry

    async def _ask(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        if self._upstream is None:
            raise Unreachable("no upstream (offline)")
        rejected: Rejected | None = None
        for key in self._own.values():
            try:
                return await self._upstream.live_keys(key, digests)
            except Rejected as exc:
                rejected = exc  # that key was revoked: another of the relay's may still work
        raise rejected or Unreachable("the relay has no key to ask with")

    async def refresh(self) -> None:
        """Ask the upstream about every known key once (revoked ones are forgotten)."""
        digests = list(self._entries)
        if not digests:
            return
        answer = await self._ask(digests)
        for key_digest in digests:
            self._record(key_digest, answer.get(key_digest))

    async def refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._ttl)
            try:
                await self.refresh()
            except (Unreachable, Rejected) as exc:
                log.debug("could not refresh the key list: %s", exc)

    def by_token_id(self, token_id: str) -> KeyEntry | None:
        """The live key with this id (event-stream URLs name keys by id), if the relay knows
        it; a revoked one is forgotten at the next refresh."""
        for entry in self._entries.values():
            if entry.token_id == token_id:
                return entry
        return None

    def answer(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What this relay knows of ``digests`` (for a downstream relay's ``/relay/keys``)."""
        return {
            d: {"kind": e.kind, "environment": e.environment, "token_id": e.token_id}
            for d in digests if (e := self._entries.get(d)) is not None
        }

    async def live(self, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``/relay/keys`` at this relay: the upstream's answer when it can be asked (and
        remembered), else what was last known."""
        try:
            answer = await self._ask(digests)
        except (Unreachable, Rejected):
            known = self.answer(digests)
            for d in digests:
                own = self._own_entry(d)
                if d not in known and own is not None:
                    known[d] = {"kind": own.kind, "environment": own.environment,
                                "token_id": own.token_id}
            return known
        for d in digests:
            self._record(d, answer.get(d))
        return {d: answer[d] for d in digests if d in answer}
