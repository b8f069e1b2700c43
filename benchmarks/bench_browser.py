"""Serving browsers: OFREP bulk evaluation with a client-side key, ETags, and event streams.

    .venv/bin/python benchmarks/bench_browser.py [--connections 1000] [--writes 10]

One ``python -m flagstaff.server`` process (SQLite unless ``--database-url``) with 20 flags
marked client-side (booleans, string rollouts, attribute rules, a segment) and 5 server-only
ones; every request carries a client-side key and the ``Origin`` of a page the environment
allows, as a browser would.  Measured:

* bulk evaluation (``POST /ofrep/v1/evaluate/flags``) for one page context: latency p50/p99
  over sequential requests on one connection, and requests/s with 16 concurrent connections,
  both from a separate process (the load generator's own work would otherwise count);
* the 304 rate: 500 distinct contexts fetch once, then again with ``If-None-Match`` when
  nothing changed, after a change to a server-only flag, after a change in another environment,
  and after a targeting change for other users on a client-side flag (the event stream wakes
  those pages; their re-fetch must still be a 304);
* memory per browser event-stream connection: server RSS growth / N for N OFREP event streams
  (``GET /ofrep/v1/event-stream?token=...``, the signed URL from the bulk answer), after a
  batch of 250 was opened and closed first (user-space memory; kernel buffers not included);
* propagation: a client-side flag toggled through the API ``--writes`` times; time from
  sending the request to each of the N connections reading its ``refetchEvaluation``
  p50/p99/max.  Server and load generator share the machine, so the figures include the load
  generator's time to read N sockets.

Results go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from _sse_swarm import SseConnection, SseSwarm
from bench_stream import Server, pct, rss_kib

ORIGIN = "https://app.example.com"
BULK = "/ofrep/v1/evaluate/flags"
CONTEXT = {"targetingKey": "user-42", "plan": "pro", "country": "DE", "appVersion": "2.3.1"}
REFETCH = re.compile(rb'^id: (\d+)\nevent: message\ndata: \{"type":"refetchEvaluation"', re.M)


def client_side_flags() -> list[dict[str, Any]]:
    flags: list[dict[str, Any]] = []
    for i in range(20):
        if i % 4 == 0:
            env = {"enabled": True, "fallthrough": {"variant": "true"}}
            definition: dict[str, Any] = {"key": f"page-{i}", "type": "boolean"}
        elif i % 4 == 1:
            env = {"enabled": True, "rules": [
                {"conditions": [{"attribute": "plan", "operator": "in", "values": ["pro", "team"]}],
                 "serve": {"variant": "true"}}], "fallthrough": {"variant": "false"}}
            definition = {"key": f"page-{i}", "type": "boolean"}
        elif i % 4 == 2:
            env = {"enabled": True, "fallthrough": {"rollout": {"variations": [
                {"variant": "a", "weight": 50}, {"variant": "b", "weight": 50}]}}}
            definition = {"key": f"page-{i}", "type": "string",
                          "variants": {"a": "Checkout", "b": "Buy now"}, "off_variant": "a"}
        else:
            env = {"enabled": True, "targets": [{"variant": "true", "values": ["vip-1", "vip-2"]}],
                   "rules": [{"conditions": [{"operator": "segment_match", "values": ["beta"]}],
                              "serve": {"variant": "true"}}],
                   "fallthrough": {"variant": "false"}}
            definition = {"key": f"page-{i}", "type": "boolean"}
        flags.append({**definition, "client_side": True, "environments": {"production": env}})
    return flags


def setup(server: Server) -> str:
    admin = server.client
    admin.post("/segments", json={"key": "beta", "included": ["user-7", "user-8"]}).raise_for_status()
    for definition in client_side_flags():
        created = admin.post("/flags", json=definition)
        if created.status_code != 201:
            raise RuntimeError(f"{definition['key']}: {created.text}")
    for i in range(5):
        admin.post("/flags", json={"key": f"server-{i}", "type": "boolean", "environments": {
            "production": {"enabled": True}, "development": {"enabled": True}}}).raise_for_status()
    admin.patch("/environments/production/client-access",
                json={"allowed_origins": [ORIGIN]}).raise_for_status()
    answer = admin.post("/tokens", json={"name": "page", "kind": "sdk-client",
                                         "environment": "production"})
    answer.raise_for_status()
    return str(answer.json()["secret"])


def page_headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Origin": ORIGIN}


# -- bulk latency and throughput, from a separate process --------------------------------------

def bulk_probe(url: str, key: str, samples: int, concurrent: int, total: int) -> None:
    gc.disable()
    body = {"context": CONTEXT}
    timings = []
    with httpx.Client(base_url=url, timeout=30, headers=page_headers(key)) as client:
        for n in range(200 + samples):
            started = time.perf_counter()
            response = client.post(BULK, json=body)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and len(response.json()["flags"]) == 20
            if n >= 200:
                timings.append(elapsed)

    async def hammer() -> float:
        remaining = total
        limits = httpx.Limits(max_connections=concurrent)
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=page_headers(key),
                                     limits=limits) as client:
            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    response = await client.post(BULK, json=body)
                    assert response.status_code == 200
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrent)))
            return total / (time.perf_counter() - started)

    rate = asyncio.run(hammer())
    print(json.dumps({"timings": timings, "rate": rate}))


def bulk_numbers(server: Server, key: str, samples: int) -> dict[str, Any]:
    import subprocess

    probe = subprocess.run(
        [sys.executable, __file__, "--bulk-probe", server.url, key, str(samples), "16", "3000"],
        check=True, capture_output=True, text=True)
    return cast(dict[str, Any], json.loads(probe.stdout))


# -- 304 rate --------------------------------------------------------------------------------

def not_modified_rates(server: Server, key: str, contexts: int = 500) -> list[list[str]]:
    admin = server.client
    users = [{"targetingKey": f"user-{i}", "plan": "pro" if i % 3 else "free"} for i in range(contexts)]
    with httpx.Client(base_url=server.url, timeout=30, headers=page_headers(key)) as page:
        tags = []
        for context in users:
            answer = page.post(BULK, json={"context": context})
            assert answer.status_code == 200
            tags.append(answer.headers["etag"])

        def again() -> int:
            return sum(
                page.post(BULK, json={"context": c}, headers={"If-None-Match": t}).status_code == 304
                for c, t in zip(users, tags, strict=True))

        rows = [["nothing changed", f"{again()}/{contexts}"]]
        admin.patch("/flags/server-0/environments/production", json={"enabled": False})
        time.sleep(0.5)
        rows.append(["a server-only flag turned off", f"{again()}/{contexts}"])
        admin.patch("/flags/page-0/environments/development", json={"enabled": True})
        time.sleep(0.5)
        rows.append(["a client-side flag changed in another environment", f"{again()}/{contexts}"])
        flag = admin.get("/flags/page-3").json()
        flag["environments"]["production"]["targets"] = [
            {"variant": "true", "values": ["vip-1", "vip-2", "vip-3"]}]
        admin.put("/flags/page-3", json={k: v for k, v in flag.items() if k in (
            "key", "type", "variants", "off_variant", "client_side", "environments", "kind")}
        ).raise_for_status()
        time.sleep(0.5)
        rows.append(["a client-side flag's targets changed for other users", f"{again()}/{contexts}"])
        admin.patch("/flags/page-0/environments/production", json={"enabled": False})
        time.sleep(0.5)
        rows.append(["a client-side flag these users see turned off (control)", f"{again()}/{contexts}"])
        admin.patch("/flags/page-0/environments/production", json={"enabled": True})
    return rows


# -- event streams ----------------------------------------------------------------------------

class Streams:
    """N browser-style OFREP event streams (the signed URL, the page's Origin)."""

    def __init__(self, port: int, request_uri: str) -> None:
        request = (f"GET {request_uri} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}"
                   "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n").encode()
        self.swarm = SseSwarm(port, request, self._on_data)
        self.armed: int | None = None  # the write whose events are being timed
        self.arrivals: dict[int, list[float]] = {}

    def _on_data(self, connection: SseConnection, buffer: bytes, now: float) -> None:
        if self.armed is not None and REFETCH.search(buffer):
            self.arrivals.setdefault(self.armed, []).append(now)

    @property
    def failed(self) -> int:
        return self.swarm.failed

    async def open(self, n: int) -> None:
        await self.swarm.open(n)

    async def close(self) -> None:
        await self.swarm.close()


async def stream_numbers(server: Server, key: str, n: int, writes: int) -> list[str]:
    answer = server.client.post(BULK, json={"context": CONTEXT}, headers=page_headers(key))
    uri = answer.json()["eventStreams"][0]["endpoint"]["requestUri"]
    warm = Streams(server.port, uri)
    await warm.open(250)
    await warm.close()
    await asyncio.sleep(1)
    rss_before = rss_kib(server.process.pid)
    streams = Streams(server.port, uri)
    started = time.monotonic()
    await streams.open(n)
    connect_s = time.monotonic() - started
    await asyncio.sleep(2)
    rss_after = rss_kib(server.process.pid)
    connected = n - streams.failed
    delays: list[float] = []
    delivered = 0
    for k in range(writes):
        streams.armed = k
        sent = time.perf_counter()
        await asyncio.to_thread(server.client.patch, "/flags/page-0/environments/production",
                                json={"enabled": k % 2 == 1})
        deadline = time.monotonic() + 15
        while len(streams.arrivals.get(k, ())) < connected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        arrived = streams.arrivals.get(k, [])
        delivered += len(arrived)
        delays += [t - sent for t in arrived]
        streams.armed = None
        await asyncio.sleep(0.3)
    await streams.close()
    return [
        f"{connected:,}/{n:,}", f"{connect_s:.1f}",
        f"{(rss_after - rss_before) / max(connected, 1):.1f}",
        f"{delivered:,}/{connected * writes:,}",
        f"{statistics.median(delays) * 1000:.0f} / {pct(delays, 0.99) * 1000:.0f} / "
        f"{max(delays) * 1000:.0f}" if delays else "-",
    ]


def main() -> None:
    if sys.argv[1:2] == ["--bulk-probe"]:
        url, key, samples, concurrent, total = sys.argv[2:7]
        bulk_probe(url, key, int(samples), int(concurrent), int(total))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        server = Server(url, Path(tmp) / "server.log")
        try:
            key = setup(server)
            bulk = bulk_numbers(server, key, args.samples)
            timings = bulk["timings"]
            bulk_rows = [[f"{statistics.median(timings) * 1000:.2f} / {pct(timings, 0.99) * 1000:.2f}",
                          f"{1 / statistics.median(timings):.0f}", f"{bulk['rate']:.0f}"]]
            bulk_headers = ["latency p50 / p99 ms (sequential)", "req/s (1 connection)",
                            "req/s (16 connections)"]
            print(table(bulk_headers, bulk_rows), flush=True)
            etag_rows = not_modified_rates(server, key)
            print(table(["re-fetch with If-None-Match after", "304s"], etag_rows), flush=True)
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                stream_row = runner.run(stream_numbers(server, key, args.connections, args.writes))
            stream_headers = ["event streams", "connect s", "server RSS KiB/conn",
                              "refetch events delivered", "propagation p50/p99/max ms"]
            print(table(stream_headers, [stream_row]), flush=True)
        finally:
            server.stop()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    backend = "PostgreSQL" if args.database_url else "SQLite"
    markdown = (
        "### Serving browsers (OFREP with a client-side key)\n\n"
        f"`benchmarks/bench_browser.py`: one server process ({backend}), 20 client-side and 5 "
        "server-only flags, every request with a client-side key and an allowed `Origin`. "
        f"Load average at the end: {load} (a shared machine).\n\n"
        f"Bulk evaluation of the 20 flags for one context ({args.samples} sequential samples "
        "after 200 discarded; then 3,000 requests over 16 connections):\n\n"
        + table(bulk_headers, bulk_rows)
        + "\n\nETags: 500 distinct contexts re-fetch with the tag of their last answer:\n\n"
        + table(["re-fetch with If-None-Match after", "304s"], etag_rows)
        + f"\n\nOFREP event streams held as a browser holds them ({args.connections:,} connections; "
        f"{args.writes} writes toggling a client-side flag; propagation from sending the write "
        "to each connection reading its `refetchEvaluation`):\n\n"
        + table(stream_headers, [stream_row])
    )
    print()
    print(markdown)
    if not args.no_write:
        write_section("browser", markdown)


if __name__ == "__main__":
    main()
