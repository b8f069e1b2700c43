"""Shared fixtures.

``database_url`` runs a test once on SQLite and once on PostgreSQL.  Each PostgreSQL test gets
its own freshly created database, dropped afterwards.  In CI (``CI=true``) an unreachable
PostgreSQL fails the run instead of silently skipping half of the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PG_ADMIN_DSN = os.environ.get("FLAGSTAFF_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def _trace_unclosed_postgres_connections() -> None:
    """Name where a PostgreSQL connection was opened when it is found unclosed.

    psycopg warns when a connection is garbage-collected open, which fails whatever test the
    collection happens in (``filterwarnings = error``), usually not the one that leaked it.
    Remembering the opening stack (a few microseconds per connection) makes the warning say
    which code opened it."""
    import traceback
    import warnings

    try:
        import psycopg
    except ImportError:
        return
    connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]
    original_del = psycopg.Connection.__del__

    def traced_connect(cls: Any, *args: Any, **kwargs: Any) -> Any:
        conn = connect(cls, *args, **kwargs)
        conn._flagstaff_opened_at = "".join(traceback.format_stack()[-20:-1])
        return conn

    def traced_del(self: Any, *args: Any) -> None:
        if hasattr(self, "pgconn") and not self.closed and not hasattr(self, "_pool"):
            opened = getattr(self, "_flagstaff_opened_at", "(unknown)")
            warnings.warn(f"PostgreSQL connection garbage-collected while open; opened at:\n"
                          f"{opened}", ResourceWarning, stacklevel=1)
            return
        original_del(self, *args)

    psycopg.Connection.connect = classmethod(traced_connect)  # type: ignore[method-assign,assignment]
    # SQLAlchemy's dialect calls the module's alias, bound when psycopg was imported.
    psycopg.connect = psycopg.Connection.connect
    psycopg.Connection.__del__ = traced_del  # type: ignore[method-assign]


_trace_unclosed_postgres_connections()


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.encode())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'flagstaff.db'}"
        return
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 (CI must run both backends)")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"flagstaff_test_{uuid.uuid4().hex[:12]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()


def git_root() -> Path:
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return Path(out.stdout.strip() or ".")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (this conftest loads first)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run a module's tests in one worker when they share a module-scoped fixture (a server
    process, a browser's server): spread over four workers, each would start its own copy, and
    on two cores those starts cost more than the parallelism gains."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = any(
            definition.scope == "module"
            for definitions in info.name2fixturedefs.values()
            for definition in definitions
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(f"module:{item.nodeid.split('::')[0]}"))


_LOGGERS = ("", "flagstaff", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a test's in-process ``serve`` did to logging: ``configure_logging`` binds the
    flagstaff and uvicorn loggers to the stderr of the moment (pytest's capture, closed after
    that test) and stops their propagation, which would hide later tests' records from caplog
    and make every later log line a "closed file" error."""
    import logging

    saved = [(logger, list(logger.handlers), logger.level, logger.propagate, logger.disabled)
             for logger in map(logging.getLogger, _LOGGERS)]
    yield
    for logger, handlers, level, propagate, disabled in saved:
        logger.handlers = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
