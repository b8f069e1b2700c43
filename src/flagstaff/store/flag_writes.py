"""Flag writes: validate, check references, write state + audit record + change event.

Every function here runs on a connection inside :func:`flagstaff.store.db.write_tx`, so the
new row, its audit record and its change event commit together or not at all.

A write whose validated result equals the stored definition (and state) is a no-op: it
returns the current record without a new version, audit record or change event, so that
re-applying the same file or repeating a toggle does not flood the history or the stream.
A write that only lists a rollout's variations in another order keeps the stored order (order
alone decides which users a variation gets), so it too is a no-op.  A write that moves users
between variants says so in its audit diff: one ``reassign`` entry per serve with the share
moved (:mod:`flagstaff.engine.reassignment`).
Archived flags are read-only until restored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from flagstaff.engine import DefinitionError, flag_references, validate_flag
from flagstaff.engine.reassignment import keep_variation_order, reassignments
from flagstaff.errors import Conflict, Invalid, NotFound, PreconditionFailed
from flagstaff.store import audit, changelog, flags, references
from flagstaff.store.db import now
from flagstaff.store.governance import policies
from flagstaff.store.governance.policies import Review
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


def _targets(definition: dict[str, Any]) -> list[tuple[str, str]]:
    prerequisites, segment_keys = flag_references(definition)
    return [("flag", k) for k in prerequisites] + [("segment", k) for k in segment_keys]


def _check_references(conn: sa.Connection, definition: dict[str, Any]) -> list[tuple[str, str]]:
    prerequisites, segment_keys = flag_references(definition)
    references.check_flag_references(
        conn, definition, prerequisites=prerequisites, segment_keys=segment_keys
    )
    return _targets(definition)


def _diff_view(record: FlagRecord) -> dict[str, Any]:
    return {k: v for k, v in record.definition.items() if k not in _DIFF_IGNORED}


def flag_diff(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """The audit diff of a flag write: changed fields, then the users each serve reassigns."""
    changes = audit.structural_diff(before, after)
    if before:
        changes.extend(r.to_change() for r in reassignments(before, after))
    return changes


def _log(
    conn: sa.Connection,
    *,
    actor: str,
    action: str,
    before: FlagRecord | None,
    after: FlagRecord,
    environment: str | None = None,
    context: dict[str, Any] | None = None,
) -> int:
    """Change event and audit record of one flag write; returns the audit record's id."""
    event_id = changelog.append(
        conn,
        type=EVENT_FOR_ACTION.get(action, "flag_updated"),
        kind="flag",
        key=after.key,
        data=after.to_dict(),
    )
    return audit.record(
        conn,
        actor=actor,
        action=action,
        target_kind="flag",
        target_key=after.key,
        environment=environment,
        before=None if before is None else before.to_dict(),
        after=after.to_dict(),
        diff=flag_diff({} if before is None else _diff_view(before), _diff_view(after)),
        event_id=event_id,
        context=context,
    )


def create(
    conn: sa.Connection, *, definition: Any, actor: str, review: Review | None = None
) -> FlagRecord:
    clean = normalise(definition)
    if flags.get(conn, key=clean["key"]) is not None:
        raise Conflict(
            f"flag '{clean['key']}' already exists",
            code="flag_exists",
            details={"field": "key", "key": clean["key"]},
        )
    context = policies.guard(conn, key=clean["key"], before=None, after=clean, review=review)
    targets = _check_references(conn, clean)
    record = flags.insert(conn, definition=clean, at=now())
    references.replace_refs(conn, kind="flag", key=record.key, targets=targets)
    _log(conn, actor=actor, action="created", before=None, after=record, context=context)
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
    review: Review | None = None,
    note: dict[str, Any] | None = None,
) -> FlagRecord:
    """Apply ``change`` (current -> (new pure definition, new state)) as one audited write.

    Changes to an environment under an approval policy are refused unless ``review`` covers
    that environment (an approved change request) or the change is an incident kill.
    ``note`` joins the audit record's context (a kill's reason, the version a revert restores).
    """
    updated, _ = write_audited(
        conn, key=key, actor=actor, if_match=if_match, action=action, change=change,
        environment=environment, allow_archived=allow_archived, review=review, note=note,
    )
    return updated


def write_audited(
    conn: sa.Connection,
    *,
    key: str,
    actor: str,
    if_match: int | None,
    action: str,
    change: Change,
    environment: str | None = None,
    allow_archived: bool = False,
    review: Review | None = None,
    note: dict[str, Any] | None = None,
) -> tuple[FlagRecord, int | None]:
    """:func:`write`, also returning the audit record's id (None when nothing changed)."""
    current = get_or_404(conn, key=key)
    check_if_match(current, if_match)
    if current.state == "archived" and not allow_archived:
        raise Conflict(f"flag '{key}' is archived; restore it before changing it")
    definition, state = change(current)
    definition = keep_variation_order(flags.pure(current.definition), definition)
    if state == current.state and audit.same_json(definition, flags.pure(current.definition)):
        return current, None
    context = policies.guard(
        conn, key=key, before=flags.pure(current.definition), after=definition, review=review
    ) | (note or {})
    # An archived flag's references are kept but not checked (it is not evaluated).
    targets = _check_references(conn, definition) if state == "active" else _targets(definition)
    updated = flags.update(conn, current=current, definition=definition, state=state, at=now())
    if updated is None:
        # Writers are serialised, so this means the row changed under a caller-held snapshot.
        raise PreconditionFailed(f"flag '{key}' changed concurrently; retry")
    # The stored references mirror the stored definition: rewrite them only when they change.
    if set(targets) != set(_targets(current.definition)):
        references.replace_refs(conn, kind="flag", key=key, targets=targets)
    audit_id = _log(
        conn, actor=actor, action=action, before=current, after=updated,
        environment=environment, context=context,
    )
    return updated, audit_id


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
