"""Event ingestion: exposures, metric events and evaluation counts from SDKs (contract §9).

Batches are idempotent: the batch id is claimed in ``ingest_batches`` in the same transaction
that stores the events, so a retried batch (the SDK did not see our 202) is answered as a
duplicate and counted once, and a failed insert leaves no claimed id behind.

Events are validated completely *before* the transaction opens (bad input is a 400 naming the
event and field, and nothing is written); the insert is one ``executemany`` per batch, which
is what makes ≥ 50,000 events/s on SQLite possible (``benchmarks/bench_ingest.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from flagstaff.errors import Invalid
from flagstaff.store.schema import evaluation_counts, exposures, ingest_batches, metric_events

MAX_EVENTS = 10_000
DAY_MS = 86_400_000
BATCH_KINDS = ("exposures", "track", "counts")
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
METRIC_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Largest integer a JSON number carries exactly; counts beyond it are surely a client bug.
_MAX_COUNT = 2**53


@dataclass(frozen=True, slots=True)
class IngestResult:
    """``accepted``: events stored by this request (0 for a duplicate batch)."""

    accepted: int
    duplicate: bool

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicate": self.duplicate}


def _bad(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}", details={"field": field})


def check_batch_id(batch_id: Any) -> str:
    if not isinstance(batch_id, str) or not _BATCH_ID.match(batch_id):
        raise _bad("batch_id", "must be 1..128 characters of letters, digits and . _ : -")
    return batch_id


def _events(events: Any, field: str) -> Sequence[Any]:
    if not isinstance(events, list):
        raise _bad(field, "must be a list")
    if len(events) > MAX_EVENTS:
        raise _bad(field, f"at most {MAX_EVENTS} events per batch (got {len(events)})")
    return events


def _text(event: Mapping[str, Any], name: str, field: str, max_len: int) -> str:
    value = event.get(name)
    if value.__class__ is not str or not 0 < len(value) <= max_len:
        raise _bad(f"{field}.{name}", f"must be a string of 1..{max_len} characters")
    return value


def timestamp_ms(value: Any, field: str) -> int:
    """Epoch milliseconds from an ISO-8601 string (a missing offset means UTC)."""
    if value.__class__ is not str or len(value) > 64:
        raise _bad(field, "must be an ISO-8601 timestamp string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(field, f"is not an ISO-8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _obj(event: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(event, dict):
        raise _bad(field, "must be a JSON object")
    return event


EXPOSURE_COLUMNS = (
    "environment", "flag_key", "variant", "user_key", "ts_ms", "reason", "flag_version",
    "in_experiment",
)
METRIC_COLUMNS = ("environment", "metric", "user_key", "value", "ts_ms")
Row = tuple[Any, ...]


def exposure_rows(events: Any, *, environment: str) -> list[Row]:
    """Validated rows (``EXPOSURE_COLUMNS``) for ``exposures``; raises :class:`Invalid`
    naming ``events[i].field``."""
    rows = []
    for i, raw in enumerate(_events(events, "events")):
        field = f"events[{i}]"
        event = _obj(raw, field)
        version = event.get("flag_version")
        if version is not None and (version.__class__ is not int or not 0 <= version < 2**31):
            raise _bad(f"{field}.flag_version", "must be a non-negative integer or null")
        in_experiment = event.get("in_experiment", False)
        if in_experiment.__class__ is not bool:
            raise _bad(f"{field}.in_experiment", "must be true or false")
        reason = event.get("reason", "")
        if reason.__class__ is not str or len(reason) > 32:
            raise _bad(f"{field}.reason", "must be a string of at most 32 characters")
        rows.append((
            environment,
            _text(event, "flag_key", field, 128),
            _text(event, "variant", field, 64),
            _text(event, "user_key", field, 256),
            timestamp_ms(event.get("timestamp"), f"{field}.timestamp"),
            reason,
            version,
            in_experiment,
        ))
    return rows


def metric_rows(events: Any, *, environment: str) -> list[Row]:
    """Validated rows (``METRIC_COLUMNS``) for ``metric_events``; ``value`` null is a conversion."""
    rows = []
    checked: set[str] = set()  # a batch names few metrics: match each regex once
    for i, raw in enumerate(_events(events, "events")):
        field = f"events[{i}]"
        event = _obj(raw, field)
        metric = _text(event, "metric", field, 128)
        if metric not in checked and METRIC_KEY.match(metric):
            checked.add(metric)
        if metric not in checked:
            raise _bad(f"{field}.metric", "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
        value = event.get("value")
        if value is not None and (
            value.__class__ not in (int, float) or not math.isfinite(value)
        ):
            raise _bad(f"{field}.value", "must be a finite number or null")
        rows.append((
            environment,
            metric,
            _text(event, "user_key", field, 256),
            None if value is None else float(value),
            timestamp_ms(event.get("timestamp"), f"{field}.timestamp"),
        ))
    return rows


def count_rows(
    counts: Any, *, environment: str, window_start: Any, window_end: Any
) -> list[dict[str, Any]]:
    """Validated ``evaluation_counts`` increments, summed per (flag, variant) within the batch.

    A window is attributed to the UTC day its end falls on: day granularity is all the
    lifecycle rules (tens of days) need.
    """
    start = timestamp_ms(window_start, "window_start")
    end = timestamp_ms(window_end, "window_end")
    if end < start:
        raise _bad("window_end", "must not be before window_start")
    summed: dict[tuple[str, str], int] = {}
    for i, raw in enumerate(_events(counts, "counts")):
        field = f"counts[{i}]"
        entry = _obj(raw, field)
        count = entry.get("count")
        if count.__class__ is not int or not 0 <= count < _MAX_COUNT:
            raise _bad(f"{field}.count", "must be a non-negative integer")
        key = (_text(entry, "flag_key", field, 128), _text(entry, "variant", field, 64))
        summed[key] = summed.get(key, 0) + count
    day = end // DAY_MS
    return [
        {"environment": environment, "flag_key": flag, "variant": variant, "day": day,
         "count": count, "last_ms": end}
        for (flag, variant), count in summed.items()
        if count > 0
    ]


def _dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    # ON CONFLICT exists on both backends but SQLAlchemy builds it per dialect.
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table)


def claim_batch(
    conn: sa.Connection, *, batch_id: str, kind: str, environment: str, at: datetime
) -> bool:
    """Record the batch id; False if it was already there (a retry: store nothing)."""
    statement = (
        _dialect_insert(conn, ingest_batches)
        .values(batch_id=batch_id, kind=kind, environment=environment, received_at=at)
        .on_conflict_do_nothing(index_elements=["batch_id"])
        # RETURNING, not rowcount: psycopg reports no reliable rowcount for this statement.
        .returning(ingest_batches.c.batch_id)
    )
    return conn.execute(statement).first() is not None


def _bulk_insert(
    conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], rows: list[Row]
) -> None:
    # A plain DB-API executemany of tuples: SQLAlchemy's per-row parameter processing cost
    # about a third of the ingestion time.  The rows are validated and typed already.
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, rows)


def insert_exposures(conn: sa.Connection, *, rows: list[Row]) -> None:
    if rows:
        _bulk_insert(conn, exposures, EXPOSURE_COLUMNS, rows)


def insert_metric_events(conn: sa.Connection, *, rows: list[Row]) -> None:
    if rows:
        _bulk_insert(conn, metric_events, METRIC_COLUMNS, rows)


def add_counts(conn: sa.Connection, *, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    statement = _dialect_insert(conn, evaluation_counts)
    table = evaluation_counts.c
    statement = statement.on_conflict_do_update(
        index_elements=["environment", "flag_key", "variant", "day"],
        set_={
            "count": table.count + statement.excluded.count,
            # CASE rather than max()/GREATEST(), which the two backends spell differently.
            "last_ms": sa.case(
                (statement.excluded.last_ms > table.last_ms, statement.excluded.last_ms),
                else_=table.last_ms,
            ),
        },
    )
    conn.execute(statement, rows)
