"""Backoff with jitter across many clients, and polling fallback, through a TCP fault proxy."""

from __future__ import annotations

import dataclasses
import statistics
import time

from flagstaff.sdk import Client
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag
from tests.sdk.faultproxy import FaultProxy


def test_reconnects_of_50_clients_are_spread_not_a_herd(server: FakeServer) -> None:
    # Fleet reports off: their connections through the proxy would count as reconnects.
    options = dataclasses.replace(FAST, backoff_base=0.5, backoff_cap=2.0, poll_after=60.0,
                                  report=False)
    with FaultProxy(server.port) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"
        clients = [Client(url, sdk_key=KEY, options=options) for _ in range(50)]
        try:
            assert all(c.wait_until_ready(timeout=10) for c in clients)
            assert eventually(lambda: server.open_streams == 50, timeout=10)
            dropped_at = time.monotonic()
            mark = len(proxy.accepts)
            proxy.drop_all(refuse=True)
            assert eventually(lambda: len(proxy.accepts) - mark >= 50, timeout=10)
            first = [t - dropped_at for t in proxy.accepts[mark:mark + 50]]
            # Full jitter: first retries uniform over [0, 0.5 s], not all at once.
            spread = statistics.pstdev(first)
            buckets = len({int(t / 0.05) for t in first})
            assert spread > 0.08, (spread, sorted(first))
            assert buckets >= 6, sorted(first)
            proxy.refusing = False
            server.set_flag(bool_flag("new-checkout", False, version=2))
            assert eventually(lambda: all(c.bool("new-checkout", {}, default=True) is False
                                          for c in clients), timeout=15)
        finally:
            for client in clients:
                client.close()
    print(f"\nreconnect spread of 50 clients: std dev {spread * 1000:.0f} ms, "
          f"{buckets} distinct 50 ms buckets")


def test_proxy_outage_falls_back_to_polling_and_back(server: FakeServer) -> None:
    options = dataclasses.replace(FAST, backoff_base=0.1, backoff_cap=0.3, poll_after=0.3,
                                  poll_interval=0.1)
    with FaultProxy(server.port) as proxy, Client(
        f"http://127.0.0.1:{proxy.port}", sdk_key=KEY, options=options
    ) as client:
        assert client.wait_until_ready(timeout=5)
        sync = client._sync
        assert sync is not None and eventually(lambda: sync.streaming)
        server.refuse["/stream"] = (503, {"Retry-After": "0.1"})
        proxy.drop_all(refuse=False)
        polls = sync.polls
        server.set_flag(bool_flag("new-checkout", False, version=2))
        assert eventually(lambda: client.bool("new-checkout", {}, default=True) is False)
        assert sync.polls > polls and not sync.streaming
        del server.refuse["/stream"]
        assert eventually(lambda: sync.streaming, timeout=5)


def test_a_stalled_connection_is_detected_by_the_read_timeout_then_polling_then_recovery(
    server: FakeServer,
) -> None:
    # The fake server sends a keepalive every 0.2 s; 0.6 s of silence means a dead connection.
    options = dataclasses.replace(FAST, read_timeout=0.6, connect_timeout=0.5, backoff_base=0.05,
                                  backoff_cap=0.2, poll_after=0.5, poll_interval=0.2)
    with FaultProxy(server.port) as proxy, Client(
        f"http://127.0.0.1:{proxy.port}", sdk_key=KEY, options=options
    ) as client:
        assert client.wait_until_ready(timeout=5)
        sync = client._sync
        assert sync is not None and eventually(lambda: sync.streaming)
        connects, polls = sync.stream_connects, sync.polls
        stalled_at = time.monotonic()
        proxy.stalled = True
        mark = len(proxy.accepts)
        assert eventually(lambda: not sync.streaming, timeout=5)
        detected = time.monotonic() - stalled_at
        assert 0.5 <= detected < 3, detected
        # It keeps trying (new connections, which stall too) and falls back to polling.
        assert eventually(lambda: len(proxy.accepts) - mark >= 2 and sync.polls > polls, timeout=5)
        assert client.bool("new-checkout", {}, default=False) is True  # the cache still serves
        proxy.stalled = False
        server.set_flag(bool_flag("new-checkout", False, version=2))
        assert eventually(lambda: client.bool("new-checkout", {}, default=True) is False, timeout=10)
        assert eventually(lambda: sync.streaming and sync.stream_connects > connects, timeout=10)
