"""Client evaluation and sync against the in-test fake server."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time

import pytest

from flagstaff.engine import ErrorCode, Reason
from flagstaff.sdk import Client, ClientStatus
from tests.sdk.conftest import FAST, eventually, sdk_threads
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag, string_flag


def test_issue_example_evaluates_from_the_local_cache(server: FakeServer) -> None:
    server.set_flag(string_flag("model-provider", "openai"))
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        assert client.wait_until_ready(timeout=5)
        assert client.bool("new-checkout", {"key": "u1", "country": "DE"}, default=False) is True
        detail = client.detail("model-provider", {"key": "u1"}, default="anthropic")
        assert (detail.value, detail.variant) == ("openai", "a")
        assert detail.error_code is None
        assert client.string("model-provider", {"key": "u1"}, default="x") == "openai"
        assert client.all_flags({"key": "u1"}) == {"new-checkout": True, "model-provider": "openai"}
        requests = len(server.seen)
        for _ in range(50):
            client.bool("new-checkout", {"key": "u1"})
        assert len(server.seen) == requests  # evaluation never touches the network


def test_wrong_type_and_missing_flag_return_the_default(server: FakeServer) -> None:
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        assert client.wait_until_ready(timeout=5)
        assert client.string("new-checkout", {"key": "u"}, default="d") == "d"
        assert client.number("new-checkout", {"key": "u"}, default=3) == 3
        mismatch = client.detail("new-checkout", {"key": "u"}, default="d",
                                 expected_type=__import__("flagstaff.engine").engine.FlagType.STRING)
        assert (mismatch.value, mismatch.error_code) == ("d", ErrorCode.TYPE_MISMATCH)
        missing = client.detail("nope", {"key": "u"}, default=7)
        assert (missing.value, missing.error_code) == (7, ErrorCode.FLAG_NOT_FOUND)


def test_before_the_first_snapshot_defaults_are_served_with_not_ready(server: FakeServer) -> None:
    server.refuse["/sdk/flags"] = (503, {})
    server.refuse["/stream"] = (503, {})
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        assert not client.wait_until_ready(timeout=0.2)
        assert client.bool("new-checkout", {"key": "u"}, default=False) is False
        detail = client.detail("new-checkout", {"key": "u"}, default=False)
        assert detail.value is False and detail.reason is Reason.ERROR
        assert detail.error_code is ErrorCode.PROVIDER_NOT_READY
        assert client.all_flags({}) == {}
        del server.refuse["/stream"]
        assert client.wait_until_ready(timeout=5)
        assert client.bool("new-checkout", {"key": "u"}) is True


def test_stream_updates_reach_the_cache_and_listeners(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    seen_all: list[str] = []
    seen_one: list[str] = []
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        client.on_change(seen_all.append)
        client.on_change(seen_one.append, key="other")
        client.on_change(lambda key: 1 / 0)
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: client._sync is not None and client._sync.streaming)
        server.set_flag(bool_flag("new-checkout", False, version=2))
        assert eventually(lambda: client.bool("new-checkout", {"key": "u"}, default=True) is False)
        server.set_flag(bool_flag("other", True))
        server.publish("flag_archived", "new-checkout", None)
        assert eventually(lambda: seen_all == ["new-checkout", "other", "new-checkout"])
        assert seen_one == ["other"]
        assert client.detail("new-checkout", {}, default=None).error_code is ErrorCode.FLAG_NOT_FOUND
        assert client.version == 3
    assert "ZeroDivisionError" in caplog.text


def test_reconnect_sends_last_event_id_and_catches_up_exactly(server: FakeServer) -> None:
    changes: list[str] = []
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        client.on_change(changes.append)
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: client._sync is not None and client._sync.streaming)
        server.refuse["/stream"] = (503, {})
        server.drop_streams()
        for i in range(5):
            server.set_flag(bool_flag(f"f{i}", i % 2 == 0))
        del server.refuse["/stream"]
        assert eventually(lambda: client.version == 5)
        resumed = [s for s in server.seen if s.path == "/stream" and "Last-Event-ID" in s.headers]
        assert resumed and resumed[-1].headers["Last-Event-ID"] == "0"
        assert changes == [f"f{i}" for i in range(5)]
        assert client.all_flags({"key": "u"}) == {
            "new-checkout": True, "f0": True, "f1": False, "f2": True, "f3": False, "f4": True}


def test_refused_key_stops_syncing_and_fails_fast(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    statuses: list[ClientStatus] = []
    with (
        caplog.at_level(logging.ERROR, logger="flagstaff.sdk"),
        Client(server.url, sdk_key="fss_wrong", options=FAST) as client,
    ):
        client.on_status(lambda status, message: statuses.append(status))
        assert client.wait_until_ready(timeout=5) is False
        assert client.error is not None and "401" in client.error
        assert eventually(lambda: not sdk_threads())
        assert len(server.seen) == 1  # no retry loop against a refused key
        assert client.status is ClientStatus.ERROR
    assert "refused the SDK key" in caplog.text
    assert ClientStatus.ERROR in statuses or client.status is ClientStatus.ERROR


def test_429_retry_after_is_honoured(server: FakeServer) -> None:
    server.refuse["/stream"] = (429, {"Retry-After": "0.4"})
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        assert client.wait_until_ready(timeout=5)  # from the initial snapshot
        assert eventually(lambda: server.count("/stream") >= 3)
        times = [s.at for s in server.seen if s.path == "/stream"][:3]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= 0.39 for gap in gaps), gaps


def test_falls_back_to_polling_then_back_to_streaming(server: FakeServer) -> None:
    options = dataclasses.replace(FAST, poll_after=0.2, poll_interval=0.1, backoff_cap=0.3)
    server.refuse["/stream"] = (503, {})
    with Client(server.url, sdk_key=KEY, options=options) as client:
        assert client.wait_until_ready(timeout=5)
        server.set_flag(bool_flag("new-checkout", False, version=2))
        assert eventually(lambda: client.bool("new-checkout", {}, default=True) is False)
        assert eventually(lambda: any(
            s.headers.get("If-None-Match") == '"1"' for s in server.seen if s.path == "/sdk/flags"
        ))
        del server.refuse["/stream"]
        sync = client._sync
        assert sync is not None
        assert eventually(lambda: sync.streaming)
        settled = server.count("/sdk/flags")
        server.set_flag(bool_flag("new-checkout", True, version=3))
        assert eventually(lambda: client.bool("new-checkout", {}, default=False) is True)
        assert server.count("/sdk/flags") - settled <= 1  # polling stopped once streaming


def test_staleness_is_reported_once_and_clears(server: FakeServer, caplog: pytest.LogCaptureFixture) -> None:
    options = dataclasses.replace(FAST, stale_after=0.3, poll_after=0.05, poll_interval=0.05)
    statuses: list[ClientStatus] = []
    with Client(server.url, sdk_key=KEY, options=options) as client:
        client.on_status(lambda status, message: statuses.append(status))
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: server.open_streams == 1)  # not still connecting at the drop
        server.refuse["/stream"] = (503, {})
        server.refuse["/sdk/flags"] = (503, {})
        server.drop_streams()
        assert eventually(lambda: client.stale)
        assert client.bool("new-checkout", {}, default=False) is True  # cache still served
        detail = client.detail("new-checkout", {}, default=False)
        assert detail.value is True
        assert detail.reason is Reason.STALE
        assert client.status is ClientStatus.STALE
        del server.refuse["/stream"]
        del server.refuse["/sdk/flags"]
        assert eventually(lambda: not client.stale)
        assert client.status is ClientStatus.READY
    assert statuses.count(ClientStatus.STALE) == 1
    assert caplog.text.count("marked STALE") == 1


def test_close_leaves_no_threads_or_connections(server: FakeServer) -> None:
    client = Client(server.url, sdk_key=KEY, options=FAST)
    assert client.wait_until_ready(timeout=5)
    assert eventually(lambda: server.open_streams == 1)
    assert sdk_threads()
    client.close()
    assert not sdk_threads()
    assert eventually(lambda: server.open_streams == 0)
    assert client.bool("new-checkout", {}, default=False) is True  # the cache still answers


def test_unknown_event_types_are_skipped_but_their_id_is_remembered(server: FakeServer) -> None:
    with Client(server.url, sdk_key=KEY, options=FAST) as client:
        assert client.wait_until_ready(timeout=5)
        server.publish("something_new", "x", {"key": "x"})
        assert eventually(lambda: client.version == 1)
        assert client.bool("new-checkout", {}, default=False) is True


def test_a_silent_stream_is_stale_within_its_keepalive_bound_and_recovers(
    server: FakeServer,
) -> None:
    # The server announces a 0.2 s keepalive: 0.5 s without a byte is a dead connection, not
    # the fixed 40 s it used to take; STALE is reported then, and READY once data flows again.
    server.announce_keepalive = True
    server.silent = True
    statuses: list[tuple[ClientStatus, float]] = []
    options = dataclasses.replace(FAST, read_timeout=None, stale_after=3600)
    with Client(server.url, sdk_key=KEY, options=options) as client:
        client.on_status(lambda status, _: statuses.append((status, time.monotonic())))
        assert client.wait_until_ready(timeout=5)
        started = time.monotonic()
        assert eventually(lambda: any(s is ClientStatus.STALE for s, _ in statuses), timeout=10)
        stale_at = next(t for s, t in statuses if s is ClientStatus.STALE)
        assert stale_at - started < 5.0  # 2.5 x 0.2 s plus scheduling on a loaded machine
        # It reconnected at once, without a backoff step: the new connection's snapshot made
        # the data fresh again (and that connection went silent in turn).
        assert eventually(lambda: server.count("/stream") >= 2, timeout=5)
        assert eventually(lambda: any(s is ClientStatus.READY and t > stale_at
                                      for s, t in statuses), timeout=5)
        server.silent = False
        server.drop_streams()
        assert eventually(lambda: statuses[-1][0] is ClientStatus.READY, timeout=10)
        server.set_flag(bool_flag("new-checkout", False, version=2))
        assert eventually(lambda: client.bool("new-checkout", True) is False, timeout=5)
