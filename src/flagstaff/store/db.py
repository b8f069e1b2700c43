"""Engine creation, migrations, transactions and driver-error translation.

The transaction model: every write runs in :func:`write_tx`, which serialises writers up front
(``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock on PostgreSQL).  Holding the
writer lock for the whole transaction makes version checks, audit ids and change-event ids
commit in id order on both backends, and avoids the deadlocks that taking the lock half way
through a multi-row write could cause.  Reads use :func:`read_tx`; ``consistent=True`` reads
several statements from one snapshot (``REPEATABLE READ`` on PostgreSQL, a WAL read
transaction on SQLite).

Driver exceptions never leave this module: integrity errors become
:class:`~flagstaff.errors.Conflict`, connection and lock failures
:class:`~flagstaff.errors.Unavailable`.
"""

from __future__ import annotations

import ctypes
import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from flagstaff.errors import Conflict, FlagstaffError, Invalid, Unavailable

# Any fixed 64-bit number works; all Flagstaff writers agree on this one.
WRITER_LOCK_KEY = 0x466C6167_73746166
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """Point PostgreSQL URLs at the psycopg 3 driver; refuse anything else than SQLite/PG."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith(("postgresql+psycopg://", "sqlite://", "sqlite+pysqlite://")):
        return url
    raise Invalid(
        "database URL must start with sqlite:// or postgresql://",
        details={"field": "database_url"},
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take over BEGIN from the sqlite3 module so that writes can use BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # FULL: an acknowledged write survives a crash of the process and of the machine.
        cursor.execute("PRAGMA synchronous=FULL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    # A deferred transaction that reads and then writes fails with SQLITE_BUSY (no waiting)
    # when another writer committed in between; IMMEDIATE takes the write lock up front.
    immediate = conn.get_execution_options().get("flagstaff_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_db_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        if ":memory:" in url or url in ("sqlite://", "sqlite+pysqlite://"):
            raise Invalid(
                "in-memory SQLite is not supported; use a file path",
                details={"field": "database_url"},
            )
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@functools.cache
def _sqlite_memory_function() -> Any:
    import _sqlite3

    try:
        function = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
    except (OSError, AttributeError):  # a static build that does not export it
        return None
    function.restype = ctypes.c_int64
    function.argtypes = []
    return function


def sqlite_memory_used() -> int | None:
    """Bytes SQLite has allocated in this process (page caches, statements, schema), or ``None``
    where the ``sqlite3`` module's library does not export ``sqlite3_memory_used``.  Part of the
    server's RSS that no Python-level measure sees."""
    function = _sqlite_memory_function()
    return None if function is None else int(function())


def is_postgres(engine: sa.Engine | sa.Connection) -> bool:
    return engine.dialect.name == "postgresql"


def now() -> datetime:
    return datetime.now(UTC)


def translate(exc: sa.exc.SQLAlchemyError) -> FlagstaffError:
    """Map a driver error to the domain error the server answers with."""
    if isinstance(exc, sa.exc.IntegrityError):
        return Conflict("the write conflicts with existing data", details={"reason": str(exc.orig)})
    if isinstance(exc, sa.exc.DataError):
        # A value the database cannot hold (e.g. NUL in PostgreSQL text): the caller's fault.
        return Invalid("a value in the request cannot be stored", details={"reason": "DataError"})
    if isinstance(exc, sa.exc.OperationalError) and "disk is full" in str(exc.orig):
        # SQLITE_FULL: the transaction was rolled back; nothing was written.
        return Unavailable(
            "the database is full (disk or size limit); the write was not applied",
            details={"reason": "storage_full"},
        )
    if isinstance(exc, sa.exc.DBAPIError | sa.exc.TimeoutError | sa.exc.DisconnectionError):
        return Unavailable("the database is unavailable", details={"reason": type(exc).__name__})
    return Unavailable("database error", details={"reason": type(exc).__name__})


@contextmanager
def write_tx(engine: sa.Engine, *, serialise: bool = True) -> Iterator[sa.Connection]:
    """One write transaction; commits on success, rolls back on any exception.

    ``serialise=False`` skips the PostgreSQL writer lock, for bookkeeping writes that produce
    no audit record or change event (SQLite serialises every writer regardless).
    """
    try:
        with _process_writer_turn(engine), \
                engine.connect().execution_options(flagstaff_write=True) as conn, conn.begin():
            if serialise and is_postgres(conn):
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITER_LOCK_KEY)))
            yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise translate(exc) from exc


_SQLITE_WRITER_LOCKS: weakref.WeakKeyDictionary[sa.Engine, threading.RLock] = (
    weakref.WeakKeyDictionary()
)
_LOCKS_GUARD = threading.Lock()


def _process_writer_turn(engine: sa.Engine) -> AbstractContextManager[Any]:
    """SQLite allows one writer; threads of this process queue on a lock instead of colliding
    in BEGIN IMMEDIATE, where SQLite's busy handler sleeps with growing back-off between
    retries (most of a write's latency under concurrent requests).  Other processes on the
    same file still rely on busy_timeout."""
    if engine.dialect.name != "sqlite":
        return nullcontext()
    with _LOCKS_GUARD:
        lock = _SQLITE_WRITER_LOCKS.get(engine)
        if lock is None:
            lock = _SQLITE_WRITER_LOCKS[engine] = threading.RLock()
    return lock


@contextmanager
def read_tx(engine: sa.Engine, *, consistent: bool = False) -> Iterator[sa.Connection]:
    try:
        with engine.connect() as conn:
            if consistent and is_postgres(conn):
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except sa.exc.SQLAlchemyError as exc:
        raise translate(exc) from exc


def run_migrations(engine: sa.Engine) -> None:
    """Upgrade to head; safe to run from several processes at once (writer lock held)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with write_tx(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
