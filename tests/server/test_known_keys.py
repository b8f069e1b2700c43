"""The fast path's callers come from the token cache's live entries and go with them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from flagstaff.server.known_keys import KnownKeys
from flagstaff.server.token_cache import TokenCache
from flagstaff.store import TokenRecord

SECRET = "fsc_" + "k" * 40


def record(token_id: str, kind: str = "sdk-client", environment: str | None = "production",
           ) -> TokenRecord:
    return TokenRecord(id=token_id, name="web", kind=kind, role=None, environment=environment,
                       created_at=datetime.now(UTC), created_by="t", last_used_at=None,
                       revoked_at=None)


class Store:
    def __init__(self) -> None:
        self.records: dict[str, TokenRecord] = {SECRET: record("t1")}
        self.reads = 0

    def authenticate(self, *, secret: str) -> TokenRecord | None:
        self.reads += 1
        return self.records.get(secret)


def test_a_caller_is_derived_once_and_dropped_with_its_entry() -> None:
    now = [0.0]
    cache = TokenCache(Store(), ttl_seconds=60, clock=lambda: now[0])  # type: ignore[arg-type]
    keys = KnownKeys(cache)
    header = f"Bearer {SECRET}".encode()
    assert keys.caller(header) is None  # not read yet: the route reads it from the database
    asyncio.run(cache.authenticate(SECRET))
    first = keys.caller(header)
    assert first is not None
    assert (first.principal.token_id, first.client, first.environment) == ("t1", True, "production")
    assert keys.caller(header) is first
    assert keys.caller(b"bearer " + SECRET.encode()) is first  # the scheme in any case
    for other in (None, b"Basic " + SECRET.encode(), b"Bearer", b"Bearer  " + SECRET.encode(),
                  b"Bearer " + SECRET.encode() + b"x"):
        assert keys.caller(other) is None
    cache.forget("t1")  # revoked (through the change feed)
    assert keys.caller(header) is None
    asyncio.run(cache.authenticate(SECRET))  # a reread, say after an expiry
    assert keys.caller(header) is None  # a revoked id is never cached again
    now[0] = 61.0
    assert keys.caller(header) is None


def test_a_reread_entry_gives_a_new_caller() -> None:
    now = [0.0]
    store = Store()
    cache = TokenCache(store, ttl_seconds=60, clock=lambda: now[0])  # type: ignore[arg-type]
    keys = KnownKeys(cache)
    header = f"Bearer {SECRET}".encode()
    asyncio.run(cache.authenticate(SECRET))
    first = keys.caller(header)
    now[0] = 61.0  # expired: the route reads the key again
    assert keys.caller(header) is None
    store.records[SECRET] = record("t1", environment="staging")
    asyncio.run(cache.authenticate(SECRET))
    second: Any = keys.caller(header)
    assert second is not first and second.environment == "staging"


def test_a_management_token_has_no_ofrep_environment() -> None:
    store = Store()
    store.records[SECRET] = record("m1", kind="management", environment=None)
    cache = TokenCache(store)  # type: ignore[arg-type]
    asyncio.run(cache.authenticate(SECRET))
    caller = KnownKeys(cache).caller(f"Bearer {SECRET}".encode())
    assert caller is not None and caller.environment is None and not caller.client
