"""Read helpers shared by console pages and the console API: rows, pickers, audit pages.

Everything here goes through the store facade; nothing holds SQL.
"""

from __future__ import annotations

from typing import Any

from flagstaff.store import Store
from flagstaff.store.lifecycle import StaleFlag
from flagstaff.store.paging import decode_cursor, encode_cursor
from flagstaff.store.records import AuditRecord, FlagRecord, Page, SegmentRecord

PAGE_SIZE = 100
# Pickers list at most this many objects (more would make a page unusable anyway).
PICKER_LIMIT = 2000


def stale_supported(store: Store) -> bool:
    """True when the store judges staleness from usage (flag lifecycle).  ``stale`` is not a
    stored state (``list_flags`` refuses it) but a view computed by ``stale_flags``."""
    return callable(getattr(store, "stale_flags", None))


def stale_page(
    found: list[StaleFlag], *, tag: str | None, q: str | None, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of stale flags (ordered by key) as flag dicts with their verdict, filtered as
    ``list_flags`` filters: ``tag`` exactly, ``q`` a case-insensitive part of the key, name or
    description."""
    needle = (q or "").lower()
    after = None if cursor is None else decode_cursor(cursor, expected=str)

    def wanted(flag: StaleFlag) -> bool:
        definition = flag.record.definition
        return (
            (after is None or flag.record.key > after)
            and (tag is None or tag in (definition.get("tags") or []))
            and (not needle or any(needle in str(definition.get(name) or "").lower()
                                   for name in ("key", "name", "description")))
        )

    matching = [f for f in found if wanted(f)]
    page = matching[:PAGE_SIZE]
    more = len(matching) > PAGE_SIZE
    next_cursor = encode_cursor(page[-1].record.key) if more and page else None
    return [f.to_dict() for f in page], next_cursor


def list_flags(
    store: Store, *, state: str, tag: str | None, q: str | None, cursor: str | None
) -> Page[FlagRecord]:
    return store.list_flags(state=state, tag=tag, q=q, limit=PAGE_SIZE, cursor=cursor)


def flag_row(flag: dict[str, Any], environments: list[str]) -> dict[str, Any]:
    """What the flag list shows for one flag: its identity and on/off per environment."""
    configs = flag.get("environments") or {}
    return {
        "key": flag["key"],
        "name": flag.get("name") or flag["key"],
        "kind": flag.get("kind", ""),
        "type": flag.get("type", ""),
        "tags": flag.get("tags") or [],
        "state": flag.get("state", "active"),
        "version": flag.get("version"),
        # Set only for flags listed as stale (``StaleFlag.to_dict``).
        "stale_reason": flag.get("stale_reason"),
        "last_evaluated_at": flag.get("last_evaluated_at"),
        "served_variant": flag.get("served_variant"),
        "status": {
            env: bool((configs.get(env) or {}).get("enabled", False)) for env in environments
        },
    }


def _paged(fetch: Any, limit: int) -> list[Any]:
    items: list[Any] = []
    cursor: str | None = None
    while len(items) < limit:
        page = fetch(cursor)
        items.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return items[:limit]


def all_segments(store: Store) -> list[SegmentRecord]:
    return _paged(lambda c: store.list_segments(limit=200, cursor=c), PICKER_LIMIT)


def segment_keys(store: Store) -> list[str]:
    return [s.key for s in all_segments(store)]


def flag_variants(store: Store, *, exclude: str) -> dict[str, list[str]]:
    """Active flags and their variant keys, for the prerequisite picker."""
    flags = _paged(lambda c: store.list_flags(state="active", limit=500, cursor=c), PICKER_LIMIT)
    return {f.key: list(f.definition.get("variants") or {}) for f in flags if f.key != exclude}


def audit_records(store: Store, *, limit: int = 1000, **filters: Any) -> list[dict[str, Any]]:
    """Audit records (oldest first) as dicts, with each diff made readable."""
    records: list[AuditRecord] = _paged(
        lambda c: store.list_audit(limit=min(limit, 500), cursor=c, **filters), limit
    )
    return [readable(r.to_dict()) for r in records]


def readable(record: dict[str, Any]) -> dict[str, Any]:
    """A record whose creation diff is one line per field rather than the whole definition."""
    after = record.get("after") if isinstance(record.get("after"), dict) else {}
    record["version"] = (after or {}).get("version")
    diff = [d for d in record.get("diff") or [] if d.get("path") not in _NOISE]
    record["diff"] = diff
    return record


_NOISE = frozenset({"version", "updated_at", "created_at"})


def changes_since(store: Store, *, key: str, version: int) -> list[dict[str, Any]]:
    """Audit records of a flag written after ``version``: what a 412 shows the person."""
    records = audit_records(store, target_kind="flag", target_key=key)
    return [
        {k: r[k] for k in ("actor", "action", "created_at", "environment", "version", "diff")}
        for r in records
        if (r.get("version") or 0) > version
    ]


def experiments_supported(store: Store) -> bool:
    """True when the store keeps exposures (the experiments issue's API is present)."""
    return hasattr(store, "exposure_report")
