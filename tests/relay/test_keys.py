"""Keys at the relay: the upstream's word, cached for a time to live, remembered offline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from flagstaff.errors import Unavailable
from flagstaff.relay.keys import KeyRing, digest
from flagstaff.relay.upstream import Unreachable

OWN, OTHER = "fss_relay_own_key", "fss_downstream_key"


class FakeUpstream:
    def __init__(self) -> None:
        self.live: dict[str, dict[str, Any]] = {
            digest(OWN): {"kind": "sdk-server", "environment": "production", "token_id": "t-own"},
            digest(OTHER): {"kind": "sdk-server", "environment": "production", "token_id": "t-2"},
        }
        self.down = False
        self.asked = 0

    async def live_keys(self, key: str, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.asked += 1
        if self.down:
            raise Unreachable("down")
        assert key == OWN  # the relay asks with its own key
        return {d: self.live[d] for d in digests if d in self.live}


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def ring(upstream: FakeUpstream, clock: Clock, revoked: list[str]) -> KeyRing:
    return KeyRing(upstream=upstream, own=[OWN], ttl=30, clock=clock,  # type: ignore[arg-type]
                   own_environment=lambda d: "production", on_revoked=revoked.append)


def test_answers_are_cached_for_the_ttl_and_a_revocation_is_noticed_after_it() -> None:
    upstream, clock = FakeUpstream(), Clock()
    revoked: list[str] = []
    keys = ring(upstream, clock, revoked)

    async def scenario() -> None:
        entry = await keys.lookup(OTHER)
        assert entry is not None and entry.token_id == "t-2"
        assert await keys.lookup(OTHER) == entry and upstream.asked == 1
        del upstream.live[digest(OTHER)]
        clock.now += 29
        assert await keys.lookup(OTHER) is not None  # still within the ttl
        clock.now += 2
        assert await keys.lookup(OTHER) is None
        assert revoked == ["t-2"]
        assert await keys.lookup("fss_never_issued") is None

    asyncio.run(scenario())


def test_refresh_revokes_what_the_upstream_no_longer_vouches_for() -> None:
    upstream, clock = FakeUpstream(), Clock()
    revoked: list[str] = []
    keys = ring(upstream, clock, revoked)

    async def scenario() -> None:
        await keys.lookup(OTHER)
        del upstream.live[digest(OTHER)]
        await keys.refresh()
        assert revoked == ["t-2"]

    asyncio.run(scenario())


def test_offline_known_keys_work_own_keys_work_unknown_keys_are_503() -> None:
    upstream, clock = FakeUpstream(), Clock()
    revoked: list[str] = []
    keys = ring(upstream, clock, revoked)
    asyncio.run(keys.lookup(OTHER))
    saved = keys.dump()["keys"]

    restarted = ring(upstream, clock, revoked)
    restarted.load(saved)
    upstream.down = True
    clock.now += 3600

    async def scenario() -> None:
        assert (await restarted.lookup(OTHER)) is not None
        own = await restarted.lookup(OWN)
        assert own is not None and own.environment == "production"
        with pytest.raises(Unavailable):
            await restarted.lookup("fss_never_seen")
        # A downstream relay asking about keys gets what is known.
        assert set(await restarted.live([digest(OTHER), digest(OWN), "0" * 64])) == {
            digest(OTHER), digest(OWN)}

    asyncio.run(scenario())
    assert revoked == []
