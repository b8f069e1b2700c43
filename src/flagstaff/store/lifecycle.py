"""Flag lifecycle from usage: which active flags are stale.

SDKs report evaluation counts per flag and variant (``evaluation_counts``, one row per UTC
day).  A flag is stale when, for its kind's threshold of N days:

* it has not been evaluated for N days (or never, and it is older than N days), or
* it was evaluated during the last N days, only ever with one variant, and the reports go
  back at least N days (so a flag that has just started reporting is not judged on a day of
  data).

Counts are summed over all environments: a flag still serving two variants anywhere is
alive.  Thresholds come from the server settings (``FLAGSTAFF_STALE_*_DAYS``); ``None``
means the kind is never stale (kill switches and permissions are meant to live forever).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from flagstaff.store import flags
from flagstaff.store.ingest import DAY_MS
from flagstaff.store.records import FlagRecord, iso
from flagstaff.store.schema import evaluation_counts

DEFAULT_THRESHOLDS: Mapping[str, int | None] = {
    "release": 40,
    "experiment": 40,
    "operational": 7,
    "kill-switch": None,
    "permission": None,
}


@dataclass(frozen=True, slots=True)
class StaleFlag:
    record: FlagRecord
    stale_reason: str
    last_evaluated_at: datetime | None
    served_variant: str | None

    def to_dict(self) -> dict[str, Any]:
        out = self.record.to_dict()
        out["stale_reason"] = self.stale_reason
        out["last_evaluated_at"] = (
            None if self.last_evaluated_at is None else iso(self.last_evaluated_at)
        )
        out["served_variant"] = self.served_variant
        return out


@dataclass
class _Usage:
    last_ms: int = 0
    first_day: int | None = None
    recent: dict[tuple[int, str], int] | None = None


def _usage(conn: sa.Connection, *, since_day: int) -> dict[str, _Usage]:
    c = evaluation_counts.c
    usage: dict[str, _Usage] = defaultdict(_Usage)
    for key, last_ms, first_day in conn.execute(
        sa.select(c.flag_key, sa.func.max(c.last_ms), sa.func.min(c.day)).group_by(c.flag_key)
    ):
        usage[key].last_ms, usage[key].first_day = int(last_ms), int(first_day)
    for key, variant, day, count in conn.execute(
        sa.select(c.flag_key, c.variant, c.day, sa.func.sum(c.count))
        .where(c.day >= since_day)
        .group_by(c.flag_key, c.variant, c.day)
    ):
        recent = usage[key].recent
        if recent is None:
            recent = usage[key].recent = {}
        # Kept per day so each flag can apply its own kind's window below.
        recent[(int(day), variant)] = int(count)
    return usage


def _judge(record: FlagRecord, usage: _Usage | None, *, days: int, now_ms: int) -> StaleFlag | None:
    cutoff_ms = now_ms - days * DAY_MS
    if usage is None or usage.first_day is None:
        created_ms = int(record.created_at.timestamp() * 1000)
        if created_ms <= cutoff_ms:
            age = (now_ms - created_ms) // DAY_MS
            return StaleFlag(record, f"not evaluated for {age} days (never evaluated)", None, None)
        return None
    last = datetime.fromtimestamp(usage.last_ms / 1000, UTC)
    if usage.last_ms <= cutoff_ms:
        idle = (now_ms - usage.last_ms) // DAY_MS
        return StaleFlag(record, f"not evaluated for {idle} days", last, None)
    cutoff_day = cutoff_ms // DAY_MS
    if usage.first_day > cutoff_day:
        return None  # not enough history to say "for N days"
    served = {
        variant
        for (day, variant), count in (usage.recent or {}).items()
        if count > 0 and day >= cutoff_day
    }
    if len(served) == 1:
        (variant,) = served
        return StaleFlag(
            record, f"served a single variant to everyone for {days} days", last, variant
        )
    return None


def stale_flags(
    conn: sa.Connection, *, now: datetime, thresholds: Mapping[str, int | None]
) -> list[StaleFlag]:
    """Active stale flags, ordered by key."""
    now_ms = int(now.timestamp() * 1000)
    windows = [d for d in thresholds.values() if d is not None]
    since_day = (now_ms - max(windows, default=0) * DAY_MS) // DAY_MS
    usage = _usage(conn, since_day=since_day)
    found = []
    for record in flags.all_active(conn):
        days = thresholds.get(str(record.definition.get("kind", "release")))
        if days is None:
            continue
        verdict = _judge(record, usage.get(record.key), days=days, now_ms=now_ms)
        if verdict is not None:
            found.append(verdict)
    return found


def last_evaluated(conn: sa.Connection, *, flag_key: str) -> datetime | None:
    c = evaluation_counts.c
    value = conn.execute(sa.select(sa.func.max(c.last_ms)).where(c.flag_key == flag_key)).scalar()
    return None if value is None else datetime.fromtimestamp(int(value) / 1000, UTC)


@dataclass(frozen=True)
class FlagUsage:
    """One flag's evaluations over the last ``days`` days, per environment and variant."""

    days: int
    last_evaluated_at: datetime | None
    counts: dict[str, dict[str, int]]

    def total(self, environment: str | None = None) -> int:
        envs = [environment] if environment is not None else list(self.counts)
        return sum(sum(self.counts.get(e, {}).values()) for e in envs)


def flag_usage(conn: sa.Connection, *, flag_key: str, now: datetime, days: int) -> FlagUsage:
    c = evaluation_counts.c
    since_day = int(now.timestamp() * 1000) // DAY_MS - days + 1
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for env, variant, count in conn.execute(
        sa.select(c.environment, c.variant, sa.func.sum(c.count))
        .where(c.flag_key == flag_key, c.day >= since_day)
        .group_by(c.environment, c.variant)
    ):
        counts[env][variant] = int(count)
    return FlagUsage(
        days=days, last_evaluated_at=last_evaluated(conn, flag_key=flag_key), counts=dict(counts)
    )
