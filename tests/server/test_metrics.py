"""``/metrics`` of a real server process, parsed with prometheus-client's text parser."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import httpx
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from flagstaff.server.metrics import Metrics
from tests.server.test_stream_harness import Api, ServerProcess, bearer, running_server, sse


def scrape(server: ServerProcess, headers: dict[str, str] | None = None) -> dict[str, float]:
    """Every sample as ``name{label=value,...}`` -> value."""
    response = httpx.get(f"{server.url}/metrics", headers=headers or {}, timeout=10)
    assert response.status_code == 200, response.text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def gauge(metrics: Metrics, name: str) -> float:
    """The value of an unlabelled gauge in an in-process :class:`Metrics` registry."""
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        if family.name == name:
            return float(family.samples[0].value)
    raise AssertionError(f"no {name} series")


def test_metrics_count_clients_events_and_request_latency_by_route(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path) as server, \
            Api(server) as api:
        key = api.sdk_key()
        api.create_flag("counted")
        assert api.client.get("/flags/counted").status_code == 200
        assert api.client.get("/no/such/path/123").status_code == 404

        async def scenario() -> None:
            async with sse(server, key) as first, sse(server, key) as second:
                await first.next()
                await second.next()
                during = scrape(server)
                assert during["flagstaff_stream_clients{transport=sse}"] == 2
                api.toggle("counted", False)
                await first.next()
                await second.next()
            after = scrape(server)
            assert after["flagstaff_stream_events_sent_total{event=put,transport=sse}"] == 2
            assert after["flagstaff_stream_events_sent_total{event=flag_updated,transport=sse}"] == 2
            assert after["flagstaff_changefeed_events_total{}"] >= 1

        asyncio.run(scenario())
        samples = scrape(server)
        # The gauge falls back once the clients are gone (the server notices the disconnect).
        assert samples["flagstaff_stream_clients{transport=sse}"] == 0
        by_route = "flagstaff_http_request_duration_seconds_count{method=GET,route=/flags/{key},status=200}"
        assert samples[by_route] == 1
        unmatched = "flagstaff_http_request_duration_seconds_count{method=GET,route=<unmatched>,status=404}"
        assert samples[unmatched] == 1
        # Raw paths never become labels.
        assert not any("/flags/counted" in name or "123" in name for name in samples)
        assert samples["flagstaff_stream_slow_consumers_dropped_total{transport=sse}"] == 0


def test_metrics_token_protects_the_endpoint_when_set(tmp_path: Path) -> None:
    token = "metrics-secret"
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                        FLAGSTAFF_STREAM_METRICS_TOKEN=token) as server:
        refused = httpx.get(f"{server.url}/metrics", timeout=10)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
        wrong = httpx.get(f"{server.url}/metrics", headers=bearer("nope"), timeout=10)
        assert wrong.status_code == 401
        assert "flagstaff_stream_clients{transport=sse}" in scrape(server, bearer(token))


def test_python_allocated_blocks_follow_the_interpreter() -> None:
    metrics = Metrics()

    def blocks() -> float:
        return gauge(metrics, "flagstaff_python_allocated_blocks")

    # Collect first: garbage left by earlier tests, freed by a collection the allocations
    # below trigger, would otherwise offset them.
    gc.collect()
    gc.disable()
    try:
        before = blocks()
        held = [[i] for i in range(100_000)]  # 100,000 lists plus their ints: more live blocks
        during = blocks()
    finally:
        gc.enable()
    del held
    assert during - before > 100_000
    assert blocks() < during - 100_000


def test_sqlite_memory_gauge_counts_sqlites_own_allocations(tmp_path: Path) -> None:
    import sqlite3

    metrics = Metrics()

    def sqlite_bytes() -> float:
        return gauge(metrics, "flagstaff_sqlite_memory_bytes")

    before = sqlite_bytes()
    conn = sqlite3.connect(tmp_path / "big.db")
    try:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 10_000)  # ~5 MB of pages
        conn.commit()
        assert sum(1 for _ in conn.execute("SELECT v FROM t")) == 10_000
        # The connection's page cache (2 MiB by default) is now full.
        assert sqlite_bytes() - before > 1_000_000
    finally:
        conn.close()
    assert sqlite_bytes() - before < 500_000  # released with the connection
