"""Flag writes: validate, check references, write state + audit record + change event.

Every function here runs on a connection inside :func:`flagstaff.store.db.write_tx`, so the
new row, its audit record and its change event commit together or not at all.

A write whose validated result equals the stored definition (and state) is a no-op: it
returns the current record without a new version, audit record or change event, so that
re-applying the same file or repeating a toggle does not flood the history or the stream.
Archived flags are read-only until restored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from flagstaff.engine import DefinitionError, flag_references, validate_flag
from flagstaff.errors import Conflict, Invalid, NotFound, PreconditionFailed
from flagstaff.store import audit, changelog, flags, references
from flagstaff.store.db import now
from flagstaff.store.records import FlagRecord

EVENT_FOR_ACTION = {
    "created": "flag_created",
    "archived": "flag_archived",
    "restored": "flag_restored",
}
# Fields that change on every write; the audit diff leaves them out so it shows intent only.
_DIFF_IGNORED = ("version", "created_at", "updated_at")

Change = Callable[[FlagRecord], tuple[dict[str, Any], str]]


def normalise(definition: Any, *, key: str | None = None) -> dict[str, Any]:
    """Validate a client definition (server fields ignored); ``key`` is the URL's key."""
    if not isinstance(definition, Mapping):
        raise Invalid("a flag definition must be a JSON object", details={"field": ""})
    raw = flags.pure(dict(definition))
    if key is not None and raw.setdefault("key", key) != key:
        raise Invalid(f"the key of a flag cannot be changed (is '{key}')", details={"field": "key"})
    try:
        return flags.pure(validate_flag(raw))
    except DefinitionError as exc:
        raise Invalid(exc.message, details={"field": exc.path}) from exc


def _check_references(conn: sa.Connection, definition: dict[str, Any]) -> list[tuple[str, str]]:
    prerequisites, segment_keys = flag_references(definition)
    references.check_flag_references(
        conn, definition, prerequisites=prerequisites, segment_keys=segment_keys
    )
    return [("flag", k) for k in prerequisites] + [("segment", k) for k in segment_keys]


def _diff_view(record: FlagRecord) -> dict[str, Any]:
    return {k: v for k, v in record.definition.items() if k not in _DIFF_IGNORED}


def _log(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    before: FlagRecord | None,
    after: FlagRecord,
    environment: str | None = None,
) -> None:
    audit.record(
        conn,
        actor=actor,
        action=action,
        target_kind="flag",
        target_key=after.key,
        environment=environment,
        before=None if before is None else before.to_dict(),
        after=after.to_dict(),
        diff=audit.structural_diff({} if before is None else _diff_view(before), _diff_view(after)),
    )
    changelog.append(
        conn,
        type=EVENT_FOR_ACTION.get(action, "flag_updated"),
        kind="flag",
        key=after.key,
        data=after.to_dict(),
    )


def create(conn: sa.Connection, *, definition: Any, actor: str) -> FlagRecord:
    clean = normalise(definition)
    if flags.get(conn, key=clean["key"]) is not None:
        raise Conflict(
            f"flag '{clean['key']}' already exists",
            code="flag_exists",
            details={"field": "key", "key": clean["key"]},
        )
    targets = _check_references(conn, clean)
    record = flags.insert(conn, definition=clean, at=now())
    references.replace_refs(conn, kind="flag", key=record.key, targets=targets)
    _log(conn, actor=actor, action="created", before=None, after=record)
    return record


def get_or_404(conn: sa.Connection, *, key: str) -> FlagRecord:
    record = flags.get(conn, key=key)
    if record is None:
        raise NotFound(f"flag '{key}' does not exist", details={"key": key})
    return record


def check_if_match(record: FlagRecord, if_match: int | None) -> None:
    if if_match is not None and if_match != record.version:
        raise PreconditionFailed(
            f"'{record.key}' is at version {record.version}, not {if_match}",
            details={"current_version": record.version, "if_match": if_match},
        )


def write(
    conn: sa.Connection,
    *,
    key: str,
    actor: str,
    if_match: int | None,
    action: str,
    change: Change,
    environment: str | None = None,
    allow_archived: bool = False,
) -> FlagRecord:
    """Apply ``change`` (current -> (new pure definition, new state)) as one audited write."""
    current = get_or_404(conn, key=key)
    check_if_match(current, if_match)
    if current.state == "archived" and not allow_archived:
        raise Conflict(f"flag '{key}' is archived; restore it before changing it")
    definition, state = change(current)
    if state == current.state and audit.same_json(definition, flags.pure(current.definition)):
        return current
    targets: list[tuple[str, str]] = []
    if state == "active":
        targets = _check_references(conn, definition)
    else:
        prerequisites, segment_keys = flag_references(definition)
        targets = [("flag", k) for k in prerequisites] + [("segment", k) for k in segment_keys]
    updated = flags.update(conn, current=current, definition=definition, state=state, at=now())
    if updated is None:
        # Writers are serialised, so this means the row changed under a caller-held snapshot.
        raise PreconditionFailed(f"flag '{key}' changed concurrently; retry")
    references.replace_refs(conn, kind="flag", key=key, targets=targets)
    _log(conn, actor=actor, action=action, before=current, after=updated, environment=environment)
    return updated


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def refuse_if_prerequisite(conn: sa.Connection, *, key: str) -> None:
    """An active flag may not lose a prerequisite it depends on."""
    sources = [
        source
        for kind, source in references.referrers(conn, target_kind="flag", target_key=key)
        if kind == "flag" and source != key
    ]
    dependants = flags.active_keys(conn, keys=sources)
    if dependants:
        raise Conflict(
            f"flag '{key}' is a prerequisite of {', '.join(dependants)}; remove it from them first",
            details={"dependants": dependants},
        )
