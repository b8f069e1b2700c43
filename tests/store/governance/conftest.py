"""Helpers for the governed-change store tests: a flag in production, principals, times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flagstaff.store import Store
from tests.builders import flag

ALICE = "alice (token tok_alice)"
BOB = "bob (token tok_bob)"


def soon(seconds: float = 60) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def boolean_flag(store: Store, key: str = "checkout", *, on: bool = False, **extra: Any) -> Any:
    definition = flag(key).boolean().env("production", lambda e: e.on() if on else e.off()).build()
    definition.update(extra)
    return store.create_flag(definition=definition, actor=ALICE)


def production(store: Store, key: str) -> dict[str, Any]:
    return dict(store.get_flag(key=key).definition["environments"]["production"])


def flag_audit(store: Store, key: str) -> list[Any]:
    return store.list_audit(target_kind="flag", target_key=key, limit=500).items
