"""Event ingestion: exposures, metric events and evaluation counts from SDKs (contract §9).

Batches are idempotent per (kind, environment, batch id): the id is claimed in
``ingest_batches`` for its kind of events and the key's environment, in the same transaction
that stores the events, so a retried batch (the SDK did not see our 202) is answered as a
duplicate and counted once, and a failed insert leaves no claimed id behind.

Events are validated completely *before* the transaction opens (bad input is a 400 naming the
event and field, and nothing is written); the insert is one multi-row ``INSERT`` per 1,000
events, which is what makes ≥ 50,000 events/s on SQLite possible, over HTTP too
(``benchmarks/bench_ingest.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
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
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline ("checkout\n").
_BATCH_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
METRIC_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
# Largest integer a JSON number carries exactly; counts beyond it are surely a client bug.
_MAX_COUNT = 2**53
# Metric values are stored as floats: an integer beyond this does not convert (OverflowError).
_MAX_INT_VALUE = 2**1023


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


def _first_error(check: Callable[[Mapping[str, Any], str], object], events: Sequence[Any]) -> Invalid:
    """The :class:`Invalid` for the first bad event, found by the reference (slow) check."""
    for i, raw in enumerate(events):
        field = f"events[{i}]"
        try:
            check(_obj(raw, field), field)
        except Invalid as error:
            return error
    # Unreachable while the fast loops accept exactly what the reference checks accept
    # (tests/server/test_ingest.py holds them to that); never store what was refused.
    return _bad("events", "contains an invalid event")


def _check_exposure(event: Mapping[str, Any], field: str) -> None:
    """The reference check of one exposure: the field order and messages of a 400."""
    version = event.get("flag_version")
    if version is not None and (version.__class__ is not int or not 0 <= version < 2**31):
        raise _bad(f"{field}.flag_version", "must be a non-negative integer or null")
    if event.get("in_experiment", False).__class__ is not bool:
        raise _bad(f"{field}.in_experiment", "must be true or false")
    reason = event.get("reason", "")
    if reason.__class__ is not str or len(reason) > 32:
        raise _bad(f"{field}.reason", "must be a string of at most 32 characters")
    _text(event, "flag_key", field, 128)
    _text(event, "variant", field, 64)
    _text(event, "user_key", field, 256)
    timestamp_ms(event.get("timestamp"), f"{field}.timestamp")


def exposure_rows(events: Any, *, environment: str) -> list[Row]:
    """Validated rows (``EXPOSURE_COLUMNS``) for ``exposures``; raises :class:`Invalid`
    naming ``events[i].field``.

    The loop is the ingestion hot path (every event of every batch), so it checks each event
    with one inline condition and builds no field names; only when an event fails does
    :func:`_check_exposure` run to name the first offending field.
    """
    checked = _events(events, "events")
    rows: list[Row] = []
    append = rows.append
    parse = datetime.fromisoformat
    utc = UTC
    for event in checked:
        if event.__class__ is not dict:
            raise _first_error(_check_exposure, checked)
        get = event.get
        flag_key = get("flag_key")
        variant = get("variant")
        user_key = get("user_key")
        stamp = get("timestamp")
        reason = get("reason", "")
        version = get("flag_version")
        in_experiment = get("in_experiment", False)
        if not (
            flag_key.__class__ is str and 0 < len(flag_key) <= 128
            and variant.__class__ is str and 0 < len(variant) <= 64
            and user_key.__class__ is str and 0 < len(user_key) <= 256
            and reason.__class__ is str and len(reason) <= 32
            and (version is None or (version.__class__ is int and 0 <= version < 2**31))
            and in_experiment.__class__ is bool
            and stamp.__class__ is str and len(stamp) <= 64
        ):
            raise _first_error(_check_exposure, checked)
        try:
            moment = parse(stamp)
        except ValueError:
            raise _first_error(_check_exposure, checked) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=utc)
        append((environment, flag_key, variant, user_key, int(moment.timestamp() * 1000),
                reason, version, in_experiment))
    return rows


def _check_metric(event: Mapping[str, Any], field: str) -> None:
    """The reference check of one metric event (see :func:`_check_exposure`)."""
    metric = _text(event, "metric", field, 128)
    if not METRIC_KEY.match(metric):
        raise _bad(f"{field}.metric", "must match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
    value = event.get("value")
    if not (
        value is None
        or (value.__class__ is float and math.isfinite(value))
        or (value.__class__ is int and -_MAX_INT_VALUE < value < _MAX_INT_VALUE)
    ):
        raise _bad(f"{field}.value", "must be a finite number or null")
    _text(event, "user_key", field, 256)
    timestamp_ms(event.get("timestamp"), f"{field}.timestamp")


def metric_rows(events: Any, *, environment: str) -> list[Row]:
    """Validated rows (``METRIC_COLUMNS``) for ``metric_events``; ``value`` null is a conversion.

    Same shape as :func:`exposure_rows`: one inline check per event, the reference check
    only to name the field of a refused batch.
    """
    checked = _events(events, "events")
    rows: list[Row] = []
    append = rows.append
    parse = datetime.fromisoformat
    utc = UTC
    isfinite = math.isfinite
    metrics: set[str] = set()  # a batch names few metrics: match each regex once
    for event in checked:
        if event.__class__ is not dict:
            raise _first_error(_check_metric, checked)
        get = event.get
        metric = get("metric")
        user_key = get("user_key")
        value = get("value")
        stamp = get("timestamp")
        if not (
            metric.__class__ is str
            and (metric in metrics or (len(metric) <= 128 and METRIC_KEY.match(metric)))
            and user_key.__class__ is str and 0 < len(user_key) <= 256
            and (
                value is None
                or (value.__class__ is float and isfinite(value))
                or (value.__class__ is int and -_MAX_INT_VALUE < value < _MAX_INT_VALUE)
            )
            and stamp.__class__ is str and len(stamp) <= 64
        ):
            raise _first_error(_check_metric, checked)
        metrics.add(metric)
        try:
            moment = parse(stamp)
        except ValueError:
            raise _first_error(_check_metric, checked) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=utc)
        append((environment, metric, user_key, None if value is None else float(value),
                int(moment.timestamp() * 1000)))
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
    """Record the batch id for this kind of events in this environment; False if it was already
    there (a retry: store nothing).  The same id of another kind or environment is another batch."""
    statement = (
        _dialect_insert(conn, ingest_batches)
        .values(batch_id=batch_id, kind=kind, environment=environment, received_at=at)
        .on_conflict_do_nothing(index_elements=["kind", "environment", "batch_id"])
        # RETURNING, not rowcount: psycopg reports no reliable rowcount for this statement.
        .returning(ingest_batches.c.batch_id)
    )
    return conn.execute(statement).first() is not None


# Rows per multi-row INSERT: at most 8 columns x 1,000 = 8,000 parameters, within SQLite's
# 32,766 and PostgreSQL's 65,535.
ROWS_PER_STATEMENT = 1_000


def _bulk_insert(
    conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], rows: list[Row]
) -> None:
    # Multi-row ``INSERT ... VALUES (...), (...)`` of already validated, typed tuples, not
    # executemany: SQLAlchemy's per-row parameter processing cost about a third of the
    # ingestion time, and the sqlite3 module releases and retakes the GIL around every
    # executed row, which under a busy server queues each of the 1,000 rows behind the
    # event loop's thread.  One statement per 1,000 rows hands the GIL over once.
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    one = f"({', '.join([mark] * len(columns))})"
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        chunk = rows[start:start + ROWS_PER_STATEMENT]
        conn.exec_driver_sql(
            head + ", ".join([one] * len(chunk)), tuple([v for row in chunk for v in row])
        )


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
