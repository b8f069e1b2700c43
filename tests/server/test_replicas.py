"""Two real server processes on one PostgreSQL database: cross-replica delivery."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.server.test_stream_harness import Api, running_server, sse

postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@postgres_only
def test_a_change_through_replica_a_reaches_stream_clients_of_replica_b_via_notify(
    database_url: str, tmp_path: Path
) -> None:
    # A poll interval far beyond the timeouts below: only LISTEN/NOTIFY can deliver in time.
    slow_poll = {"FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "60"}
    with running_server(database_url, tmp_path, **slow_poll) as a, \
            running_server(database_url, tmp_path, **slow_poll) as b, Api(a) as api_a:
        key = api_a.sdk_key()

        async def scenario() -> None:
            async with sse(b, key) as on_b:
                put = await on_b.next()
                api_a.create_flag("from-a")
                event = await on_b.next(timeout=2.0)
                assert event.event == "flag_updated"
                assert json.loads(event.data)["key"] == "from-a"
            # Ids are shared: an id seen on B resumes exactly on A.
            api_a.create_flag("second")
            async with sse(a, key, last_event_id=event.id) as on_a:
                resumed = await on_a.next()
                assert json.loads(resumed.data)["key"] == "second"
                await on_a.assert_quiet(0.7)
            assert int(put.id) < int(event.id) < int(resumed.id)

        asyncio.run(scenario())


@postgres_only
def test_the_poll_delivers_across_replicas_when_notifications_are_not_received(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as a, \
            running_server(database_url, tmp_path, FLAGSTAFF_STREAM_LISTEN="false",
                           FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS="0.3") as b, \
            Api(a) as api_a:
        key = api_a.sdk_key()

        async def scenario() -> None:
            async with sse(b, key) as on_b:
                await on_b.next()
                for name in ("one", "two", "three"):
                    api_a.create_flag(name)
                events = [await on_b.next(timeout=5.0) for _ in range(3)]
                assert [json.loads(e.data)["key"] for e in events] == ["one", "two", "three"]
                await on_b.assert_quiet(0.7)

        asyncio.run(scenario())

