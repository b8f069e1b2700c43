"""Ingestion benchmark: exposures and metric events per second into SQLite.

Target: ≥ 50,000 events/s on SQLite in batches of 1,000, over HTTP.  Two measurements:

* **HTTP** (the target): a real server process (``python -m flagstaff.server``: uvicorn with
  its default uvloop/httptools, the whole middleware stack, SQLite in WAL mode with
  ``synchronous=FULL``) and a real HTTP client (httpx) in this process sending batches of
  1,000 events over several concurrent keep-alive connections, as a fleet of SDKs would.
  Server and client share this machine, so the client's CPU is reported next to the
  server's; request bodies are encoded before the clock starts (an SDK encodes its own
  batch), and every answer is checked to be ``202`` with all events accepted.
* **store**: the same validation + batch-id claim + insert, called in-process, without HTTP.

The load average is printed with the results: on a shared machine, others' work lowers them.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--events 200000] [--connections 4]
[--no-write]`` (writes the "ingest" section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _report import table, write_section

from flagstaff.store import Store

BATCH = 1_000
TARGET = 50_000
FLAGS = ("new-checkout", "search-v2", "pricing-page", "onboarding")


def _stamp(i: int) -> str:
    # Distinct millisecond timestamps over a ten-second flush window, as an SDK sends them.
    return f"2025-03-01T10:00:{(i // 1000) % 10:02d}.{i % 1000:03d}Z"


def exposures(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"flag_key": FLAGS[i % len(FLAGS)], "variant": "treatment" if i % 2 else "control",
             "user_key": f"user-{offset + i}", "timestamp": _stamp(offset + i),
             "reason": "SPLIT", "flag_version": 3, "in_experiment": True} for i in range(n)]


def metric_events(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"metric": "checkout" if i % 3 else "revenue", "user_key": f"user-{offset + i}",
             "value": None if i % 3 else 9.99, "timestamp": _stamp(offset + i)}
            for i in range(n)]


MAKERS: dict[str, Callable[[int, int], list[dict[str, Any]]]] = {
    "/exposures": exposures, "/track": metric_events,
}


# -- store path ------------------------------------------------------------------------------

def rate(total: int, send: Callable[[int], object]) -> float:
    start = time.perf_counter()
    for offset in range(0, total, BATCH):
        send(offset)
    return total / (time.perf_counter() - start)


def store_rates(directory: Path, total: int) -> dict[str, float]:
    store = Store.open(f"sqlite:///{directory / 'store.db'}")
    try:
        batches = {o: exposures(BATCH, o) for o in range(0, total, BATCH)}
        tracks = {o: metric_events(BATCH, o) for o in range(0, total, BATCH)}
        return {
            "/exposures": rate(total, lambda o: store.ingest_exposures(
                environment="production", batch_id=str(uuid.uuid4()), events=batches[o])),
            "/track": rate(total, lambda o: store.ingest_metric_events(
                environment="production", batch_id=str(uuid.uuid4()), events=tracks[o])),
        }
    finally:
        store.close()


# -- HTTP path -------------------------------------------------------------------------------

@dataclass
class HttpResult:
    path: str
    events_per_s: float
    p50_ms: float
    p95_ms: float
    server_cpu: float  # cores (CPU seconds per wall second) of the server process
    client_cpu: float  # the same for this process (the HTTP client)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """``python -m flagstaff.server`` on a free port with its own SQLite file."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.admin = "fsm_" + secrets.token_urlsafe(32)
        env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": self.admin, "FLAGSTAFF_DEMO": "false",
               "FLAGSTAFF_WORKERS": "1",
               "FLAGSTAFF_LOG_LEVEL": "WARNING"}
        self.log = (directory / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flagstaff.server", "--port", str(self.port),
             "--database-url", f"sqlite:///{directory / 'http.db'}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        for _ in range(300):
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if (await client.get(f"{self.base}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


async def _send_all(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], bodies: list[bytes],
    connections: int,
) -> list[float]:
    pending = list(reversed(bodies))
    latencies: list[float] = []

    async def connection() -> None:
        while pending:
            body = pending.pop()
            started = time.perf_counter()
            response = await client.post(url, headers=headers, content=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 202 or response.json() != {
                    "accepted": BATCH, "duplicate": False}:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")

    await asyncio.gather(*(connection() for _ in range(connections)))
    return latencies


async def http_rates(directory: Path, total: int, connections: int) -> list[HttpResult]:
    server = Server(directory)
    results = []
    try:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            await server.wait_ready(client)
            created = await client.post(
                f"{server.base}/tokens", headers={"Authorization": f"Bearer {server.admin}"},
                json={"name": "bench", "kind": "sdk-server", "environment": "production"})
            created.raise_for_status()
            headers = {"Authorization": f"Bearer {created.json()['secret']}",
                       "Content-Type": "application/json"}
            for path, make in MAKERS.items():
                url = f"{server.base}{path}"
                bodies = [json.dumps({"batch_id": str(uuid.uuid4()), "events": make(BATCH, o)})
                          .encode() for o in range(0, total, BATCH)]
                await _send_all(client, url, headers, bodies[:connections], connections)  # warm
                bodies = bodies[connections:]
                server_cpu = process_cpu_seconds(server.process.pid)
                client_cpu = time.process_time()
                started = time.perf_counter()
                latencies = await _send_all(client, url, headers, bodies, connections)
                elapsed = time.perf_counter() - started
                quantiles = statistics.quantiles(latencies, n=20)
                results.append(HttpResult(
                    path=path,
                    events_per_s=len(bodies) * BATCH / elapsed,
                    p50_ms=statistics.median(latencies) * 1000,
                    p95_ms=quantiles[18] * 1000,
                    server_cpu=(process_cpu_seconds(server.process.pid) - server_cpu) / elapsed,
                    client_cpu=(time.process_time() - client_cpu) / elapsed,
                ))
                # A retried batch is answered as a duplicate and stored once.
                retry = await client.post(url, headers=headers, content=bodies[0])
                if retry.json() != {"accepted": 0, "duplicate": True}:
                    raise RuntimeError(f"{path}: a retried batch was not a duplicate: {retry.text}")
    finally:
        server.stop()
    return results


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per measurement")
    parser.add_argument("--connections", type=int, default=4,
                        help="concurrent HTTP client connections")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        http = asyncio.run(http_rates(Path(tmp), args.events, args.connections))
        store = store_rates(Path(tmp), args.events)
    load_after = load_average()
    http_rows = [[r.path, f"{r.events_per_s:,.0f}", "yes" if r.events_per_s >= TARGET else "no",
                  f"{r.p50_ms:.0f} / {r.p95_ms:.0f}", f"{r.server_cpu:.2f}", f"{r.client_cpu:.2f}"]
                 for r in http]
    store_rows = [[path, f"{value:,.0f}", "yes" if value >= TARGET else "no"]
                  for path, value in store.items()]
    markdown = (
        f"Ingestion into SQLite (WAL, synchronous=FULL) in batches of {BATCH:,}; "
        f"target ≥ {TARGET:,} events/s.  Load average (1, 5, 15 min) before: {load_before}; "
        f"after: {load_after} ({os.cpu_count()} cores).\n\n"
        f"**HTTP**: a `python -m flagstaff.server` process (uvicorn) and an httpx client in "
        f"the benchmark process on the same machine, {args.connections} concurrent keep-alive "
        f"connections, {args.events:,} events per route (bodies encoded beforehand); CPU in "
        f"cores (CPU seconds per second).\n\n"
        + table(["route", "events/s", f"≥ {TARGET:,}", "request p50 / p95 ms", "server CPU",
                 "client CPU"], http_rows)
        + "\n\n**Store** (in-process: validation, batch-id claim and insert, no HTTP):\n\n"
        + table(["route's store call", "events/s", f"≥ {TARGET:,}"], store_rows)
    )
    print(markdown)
    if not args.no_write:
        write_section("ingest", markdown)


if __name__ == "__main__":
    main()
