"""Throughput of an evaluation route with ``--workers 1`` and ``--workers 2``.

    .venv/bin/python benchmarks/bench_workers.py [--requests 3000] [--connections 16]

A ``python -m flagstaff.server --workers N`` process (SQLite) with 4 boolean flags; a separate
load-generator process (httpx, ``--connections`` keep-alive connections) sends
``POST /ofrep/v1/evaluate/flags`` (bulk, server-side SDK key) and reports requests/s and the
p50/p99 latency it saw.  Server and load generator share the machine (and, on a busy machine,
its cores with everything else): the load average is recorded next to the figures, and the
ratio between the two rows, taken in the same run, is the figure to read.

Results go to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from bench_stream import Server, pct

BULK = "/ofrep/v1/evaluate/flags"
CONTEXT = {"targetingKey": "user-42", "plan": "pro"}


def probe(url: str, key: str, connections: int, total: int) -> None:
    """Runs in the load-generator process; prints requests/s and per-request latencies."""
    headers = {"Authorization": f"Bearer {key}"}

    async def hammer() -> tuple[float, list[float]]:
        remaining = total
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(base_url=url, timeout=60, headers=headers,
                                     limits=limits) as client:
            async def one_connection() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    started = time.perf_counter()
                    response = await client.post(BULK, json={"context": CONTEXT})
                    latencies.append(time.perf_counter() - started)
                    assert response.status_code == 200, response.text
                    assert len(response.json()["flags"]) == 4

            for _ in range(2):  # warm-up: every connection opened, both workers warm
                await client.post(BULK, json={"context": CONTEXT})
            started = time.perf_counter()
            await asyncio.gather(*(one_connection() for _ in range(connections)))
            return total / (time.perf_counter() - started), latencies

    rate, latencies = asyncio.run(hammer())
    print(json.dumps({"rate": rate, "latencies": latencies}))


def measure(workers: int, requests: int, connections: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(f"sqlite:///{tmp}/bench.db", Path(tmp) / "server.log", workers=workers)
        try:
            for i in range(4):
                server.client.post("/flags", json={
                    "key": f"flag-{i}", "type": "boolean",
                    "environments": {"production": {"enabled": True}}}).raise_for_status()
            answer = server.client.post("/tokens", json={
                "name": "bench", "kind": "sdk-server", "environment": "production"})
            answer.raise_for_status()
            key = str(answer.json()["secret"])
            time.sleep(2)  # every worker's change feed has the flags
            load_before = os.getloadavg()[0]
            result = json.loads(subprocess.run(
                [sys.executable, __file__, "--probe", server.url, key, str(connections),
                 str(requests)], check=True, capture_output=True, text=True).stdout)
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
    latencies = sorted(result["latencies"])
    return [str(workers), f"{result['rate']:,.0f}", f"{pct(latencies, 0.5) * 1000:.1f}",
            f"{pct(latencies, 0.99) * 1000:.1f}", f"{load_before:.1f} / {load_after:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--probe", nargs=4, metavar=("URL", "KEY", "CONNECTIONS", "TOTAL"))
    args = parser.parse_args()
    if args.probe:
        url, key, connections, total = args.probe
        probe(url, key, int(connections), int(total))
        return
    rows = [measure(n, args.requests, args.connections) for n in (1, 2)]
    headers = ["workers", "requests/s", "p50 ms", "p99 ms", "load average 1 min (before / after)"]
    print(table(headers, rows))
    write_section("workers", (
        "### Workers: `POST /ofrep/v1/evaluate/flags` (4 flags, server-side key), "
        "`--workers 1` vs `--workers 2`\n\n"
        f"`benchmarks/bench_workers.py`: {args.requests} requests over {args.connections} "
        "keep-alive connections from one httpx load-generator process on the same machine, "
        "SQLite.  The machine is shared (about six engineers' builds and tests on its cores): "
        "see the load average beside each row; the load generator itself takes a large part "
        "of a core, so the gain from a second worker is bounded by what is left. The absolute "
        "figures are far below what an idle machine gives (and an httpx load generator is much "
        "slower than `wrk`, which is not installed here); read the ratio between the rows, "
        "taken minutes apart in the same run.\n\n"
        + table(headers, rows)
    ))


if __name__ == "__main__":
    main()
