from __future__ import annotations

from importlib import resources
from typing import Any

import pytest

from flagstaff.errors import Invalid, Unavailable
from flagstaff.store import Store
from flagstaff.store.db import normalise_url


def test_postgres_urls_use_psycopg3() -> None:
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(Invalid) as info:
        normalise_url("mysql://u@h/db")
    assert info.value.details["field"] == "database_url"


def test_migrations_ship_inside_the_package() -> None:
    versions = resources.files("flagstaff.store").joinpath("migrations", "versions")
    assert any(p.name.startswith("0001") for p in versions.iterdir())
    assert resources.files("flagstaff.store").joinpath("migrations", "env.py").is_file()


def test_unreachable_database_is_unavailable(unused_port: int) -> None:
    with pytest.raises(Unavailable):
        Store.open(f"postgresql://postgres@127.0.0.1:{unused_port}/nope?connect_timeout=2")


def test_ping_succeeds_on_a_reachable_database(database_url: str) -> None:
    store = Store.open(database_url)
    store.ping()
    store.close()


def test_reopening_keeps_data_and_does_not_recreate_deleted_defaults(database_url: str) -> None:
    first = Store.open(database_url)
    try:
        first.delete_environment(key="development", actor="admin")
        first.create_environment(key="qa", name="QA", actor="admin")
    finally:
        first.close()
    second = Store.open(database_url)
    try:
        assert {e.key for e in second.list_environments()} == {"staging", "production", "qa"}
        assert second.latest_event_id() == 2
    finally:
        second.close()


def test_closing_leaves_no_connection_open_even_for_late_or_unreturned_users(
    database_url: str,
) -> None:
    import gc
    import threading

    store = Store.open(database_url)
    held = threading.Event()
    release = threading.Event()

    def slow_reader(engine: Any) -> None:  # a worker thread inside a query at shutdown
        with engine.connect():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=slow_reader, args=(store.engine,))
    thread.start()
    assert held.wait(5)
    threading.Timer(0.2, release.set).start()
    store.close()  # waits for the thread's connection to come back, then closes it
    thread.join()
    store.ping()  # a straggler after close gets a connection that is closed on return
    del store
    gc.collect()  # under filterwarnings=error, a connection deleted while open fails the test
