"""Faults: the database going away and a full disk.

SIGKILL during writes is covered by ``tests/server/test_crash.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from flagstaff.store import Store
from tests.conftest import PG_ADMIN_DSN
from tests.server.conftest import ADMIN_SECRET, auth


def _unavailable(response: Any) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "unavailable" and error["message"]
    return dict(error)


def _flag(key: str) -> dict[str, Any]:
    return {"key": key, "type": "boolean"}


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store.open(database_url)
    try:
        yield opened
    finally:
        opened.close()


def test_database_outage_is_503_and_recovers_without_restart(database_url: str, store: Store) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("connections are terminated on PostgreSQL; SQLite's case is the full disk")
    name = database_url.rsplit("/", 1)[1]
    app = create_app(Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET),
                     store=store)
    with TestClient(app) as client, psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        h = auth(ADMIN_SECRET)
        assert client.post("/flags", json=_flag("before"), headers=h).status_code == 201
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'.encode())
        admin.execute(b"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      b"WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
        try:
            _unavailable(client.get("/ready"))
            _unavailable(client.post("/flags", json=_flag("during"), headers=h))
            _unavailable(client.get("/flags/before", headers=h))
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'.encode())
        assert client.get("/ready").status_code == 200
        assert client.post("/flags", json=_flag("after"), headers=h).status_code == 201
        keys = {f["key"] for f in client.get("/flags", headers=h).json()["items"]}
        assert keys == {"before", "after"}  # nothing half-written during the outage


def test_sqlite_disk_full_is_a_clear_503_without_corruption(database_url: str, store: Store) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLITE_FULL is SQLite's")
    path = database_url.removeprefix("sqlite:///")
    app = create_app(Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET),
                     store=store)
    with TestClient(app) as client:
        h = auth(ADMIN_SECRET)
        assert client.post("/flags", json=_flag("kept"), headers=h).status_code == 201
        pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
        limit = {"pages": pages}

        def cap(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count={limit['pages']}")

        # The database "fills up": no page may be added (SQLITE_FULL), as on a full disk.
        sa.event.listen(store.engine, "connect", cap)
        store.engine.dispose()
        big = {**_flag("big"), "description": "x" * 1500,
               "environments": {"production": {"targets": [
                   {"variant": "true", "values": [f"user-{i}" for i in range(5000)]}]}}}
        error = _unavailable(client.post("/flags", json=big, headers=h))
        assert error["details"]["reason"] == "storage_full"
        assert "full" in error["message"]
        assert client.get("/flags/big", headers=h).status_code == 404
        assert client.get("/flags/kept", headers=h).status_code == 200

        limit["pages"] = 1_000_000  # space is freed
        store.engine.dispose()
        assert client.post("/flags", json=big, headers=h).status_code == 201
    check = sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"
