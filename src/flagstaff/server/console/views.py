"""Read helpers shared by console pages and the console API: rows, pickers, audit pages.

Everything here goes through the store facade; nothing holds SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from flagstaff.engine.reassignment import keep_variation_order, reassignments
from flagstaff.flagfile import pipeline_order
from flagstaff.server.deps import get_settings
from flagstaff.store import Store
from flagstaff.store.flag_order import FlagOrder, page_in_memory, parse_order
from flagstaff.store.lifecycle import StaleFlag
from flagstaff.store.records import AuditRecord, FlagRecord, Page, SegmentRecord

PAGE_SIZE = 100
# Pickers list at most this many objects (more would make a page unusable anyway).
PICKER_LIMIT = 2000


def environment_keys(request: Request, store: Store) -> list[str]:
    """The environments in pipeline order (``FLAGSTAFF_ENVIRONMENT_ORDER``), then the rest."""
    pipeline = [e.strip() for e in get_settings(request).environment_order.split(",") if e.strip()]
    return pipeline_order((e.key for e in store.list_environments()), pipeline)


def switch_notes(store: Store, *, key: str, flag: dict[str, Any], environments: list[str]) -> dict[str, dict[str, Any]]:
    """For each environment where the flag is off, the write that turned it off (who, when,
    and for a kill the reason): a kill must read differently from a flag never turned on."""
    notes: dict[str, dict[str, Any]] = {}
    for env in environments:
        if ((flag.get("environments") or {}).get(env) or {}).get("enabled"):
            continue
        page = store.list_audit(
            target_kind="flag", target_key=key, environment=env, action=None, newest_first=True,
            limit=20,
        )
        for record in page.items:
            if record.action in ("killed", "toggled") and record.environment == env:
                notes[env] = {
                    "killed": record.action == "killed", "actor": record.actor,
                    "at": record.created_at.isoformat(),
                    "reason": (record.context or {}).get("reason"),
                }
                break
    return notes


def usage(store: Store, *, key: str, days: int = 7) -> Any:
    """Evaluation counts of a flag over the last ``days`` (None where the store keeps none)."""
    if not callable(getattr(store, "flag_usage", None)):
        return None
    return store.flag_usage(key=key, now=datetime.now(UTC), days=days)


def code_references(store: Store, *, key: str) -> dict[str, Any]:
    """Where scanned code names the flag (per repository) and how many repositories reported
    a scan at all, so "none found" can be told from "never scanned"."""
    found = [r.to_dict() for r in store.flag_code_references(key=key, shown=10)]
    return {"total": sum(r["count"] for r in found), "repositories": found,
            "scanned": len(store.code_repositories())}


def stale_supported(store: Store) -> bool:
    """True when the store judges staleness from usage (flag lifecycle).  ``stale`` is not a
    stored state (``list_flags`` refuses it) but a view computed by ``stale_flags``."""
    return callable(getattr(store, "stale_flags", None))


def stale_page(
    found: list[StaleFlag], *, tag: str | None, q: str | None, cursor: str | None, sort: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of stale flags in ``sort`` order as flag dicts with their verdict, filtered as
    ``list_flags`` filters: ``tag`` exactly, ``q`` a case-insensitive part of the key, name or
    description."""
    needle = (q or "").lower()

    def wanted(flag: StaleFlag) -> bool:
        definition = flag.record.definition
        return (tag is None or tag in (definition.get("tags") or [])) and (
            not needle or any(needle in str(definition.get(name) or "").lower()
                              for name in ("key", "name", "description"))
        )

    page, next_cursor = page_in_memory(
        parse_order(sort), [f for f in found if wanted(f)], lambda f: f.record.definition,
        limit=PAGE_SIZE, cursor=cursor,
    )
    return [f.to_dict() for f in page], next_cursor


def list_flags(
    store: Store, *, state: str, tag: str | None, q: str | None, cursor: str | None, sort: str | None
) -> Page[FlagRecord]:
    return store.list_flags(state=state, tag=tag, q=q, limit=PAGE_SIZE, cursor=cursor, sort=sort)


def sort_headers(
    filters: dict[str, str], order: FlagOrder, environments: list[str]
) -> dict[str, dict[str, str]]:
    """Per sortable column of the flag list (by its sort field): the link that sorts by it
    (reversing the current order on the sorted column; times newest first) and its
    ``aria-sort``.  The server sorts every matching flag, not just the page shown."""
    fields = ["key", "kind", "tags", "updated"] + [f"status:{env}" for env in environments]
    headers = {}
    for column in fields:
        # The Flag column shows the name above the key: it reflects and reverses either order.
        field = "name" if column == "key" and order.field == "name" else column
        current = order.text.lstrip("-") == field
        descending = (not order.descending) if current else field == "updated"
        headers[column] = {
            "href": "?" + urlencode({**filters, "sort": ("-" if descending else "") + field}),
            "aria": ("descending" if order.descending else "ascending") if current else "",
        }
    return headers


def sort_choices(environments: list[str]) -> list[tuple[str, str]]:
    """The flag list's "Sort by" options: (sort, label)."""
    choices = [("key", "key (A to Z)"), ("-key", "key (Z to A)"), ("name", "name (A to Z)"),
               ("-name", "name (Z to A)"), ("-updated", "recently updated"),
               ("updated", "least recently updated"), ("-created", "newest"),
               ("created", "oldest"), ("kind", "kind"), ("tags", "tag")]
    return choices + [(f"status:{env}", f"on in {env} first") for env in environments] + [
        (f"-status:{env}", f"off in {env} first") for env in environments
    ]


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
        "updated_at": flag.get("updated_at"),
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


def revert_reassignments(current: dict[str, Any], target: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``reassign`` entries a revert from ``current`` to the definition ``target`` would
    record: the same computation as the write's audit diff (rollouts kept in their stored order
    when only their order differs), so the confirmation states what the audit log will."""
    return [r.to_change() for r in reassignments(current, keep_variation_order(current, target))]


def annotate_reverts(flag: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Give each earlier version's record the users reverting to it would move (``reverts``)."""
    for record in records:
        after = record.get("after")
        if record.get("version") and record["version"] != flag.get("version") and isinstance(after, dict):
            record["reverts"] = revert_reassignments(flag, after)
