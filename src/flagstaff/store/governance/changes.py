"""What a governed change does to a flag, and whether the flag moved under it.

Scheduled changes and change requests both describe a change to one environment's
configuration.  :func:`with_config` builds the flag definition it leads to (validated by the
engine, so a bad change fails when it is proposed, not when it is due);
:func:`moved_under` tells whether writes since the version a change was written against touched
what the change touches (read from the audit log's diffs, so a flag killed and turned back on
in between still counts as moved, although its value looks the same).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from flagstaff.store import flag_writes, flags
from flagstaff.store.records import FlagRecord
from flagstaff.store.schema import audit_log

ACTOR_MAX = 200
_SCAN_PAGE = 200


def actor_label(text: str) -> str:
    """An audit actor within the column's 200 characters."""
    return text if len(text) <= ACTOR_MAX else text[: ACTOR_MAX - 1] + "…"


def with_config(current: FlagRecord, environment: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The current flag with ``environment`` configured as ``config``, normalised."""
    definition = flags.pure(current.definition)
    definition.setdefault("environments", {})[environment] = copy.deepcopy(dict(config))
    return flag_writes.normalise(definition, key=current.key)


def raw_config(current: FlagRecord, environment: str) -> dict[str, Any]:
    configs = current.definition.get("environments") or {}
    return copy.deepcopy(dict(configs.get(environment) or {}))


def patch_paths(prefix: str, patch: Any) -> list[str]:
    """The leaf paths a merge patch sets or removes (lists are set as one value)."""
    if not isinstance(patch, Mapping) or not patch:
        return [prefix]
    paths: list[str] = []
    for name, value in patch.items():
        path = f"{prefix}.{name}"
        paths.extend(patch_paths(path, value) if isinstance(value, Mapping) else [path])
    return paths


def _contains(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def overlaps(a: Iterable[str], b: Iterable[str]) -> list[str]:
    """The paths of ``b`` that lie on, under or above a path of ``a``."""
    first = list(a)
    return [p for p in b if any(_contains(q, p) or _contains(p, q) for q in first)]


def paths_changed_since(
    conn: sa.Connection, *, key: str, version: int, except_scheduled: bool = False
) -> list[str]:
    """Every path the flag's audited writes after ``version`` changed (newest first).

    ``except_scheduled`` leaves out writes made by schedules: a ramp is several schedules on
    the same rollout, each planned knowing the ones before it.
    """
    paths: list[str] = []
    before_id: int | None = None
    while True:
        query = (
            sa.select(audit_log.c.id, audit_log.c.after, audit_log.c.diff, audit_log.c.context)
            .where(audit_log.c.target_kind == "flag", audit_log.c.target_key == key)
            .order_by(audit_log.c.id.desc())
            .limit(_SCAN_PAGE)
        )
        if before_id is not None:
            query = query.where(audit_log.c.id < before_id)
        rows = conn.execute(query).all()
        for row in rows:
            after = row.after if isinstance(row.after, dict) else {}
            if int(after.get("version") or 0) <= version:
                return paths
            if except_scheduled and "schedule" in (row.context or {}):
                continue
            paths.extend(str(d.get("path", "")) for d in row.diff or [])
        if len(rows) < _SCAN_PAGE:
            return paths
        before_id = int(rows[-1].id)
