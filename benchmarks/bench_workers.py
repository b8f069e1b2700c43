"""Throughput of an evaluation route with ``--workers 1`` and ``--workers 2``.

    .venv/bin/python benchmarks/bench_workers.py [--seconds 10] [--connections 32]

A ``python -m flagstaff.server --workers N`` process (SQLite) with 4 boolean flags; a separate
load-generator process (``bench_remote_eval``'s: raw asyncio sockets, HTTP/1.1 keep-alive,
``--connections`` in parallel) sends ``POST /ofrep/v1/evaluate/flags`` (bulk, server-side SDK
key) for ``--seconds`` and reports requests/s and the p50/p99 latency it saw.  Server and load
generator share the machine's cores, so the load generator's own CPU bounds what a second
worker can add: next to each row are the CPU the server's processes used (in cores, summed over
the workers) and the load average.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import table, write_section
from bench_remote_eval import cpu_seconds, load, post
from bench_stream import Server, pct

BULK = "/ofrep/v1/evaluate/flags"


def probe(port: int, key: str, connections: int, seconds: float) -> None:
    """Runs in the load-generator process; prints requests/s and per-request latencies."""
    auth = f"Authorization: Bearer {key}\r\n"
    mix = [(post(BULK, auth), 200)]
    asyncio.run(load(port, mix, 1.0, connections))  # warm-up: every worker busy
    count, took, latencies, errors = asyncio.run(load(port, mix, seconds, connections))
    print(json.dumps({"rate": count / took, "latencies": latencies, "errors": errors}))


def family(pid: int) -> list[int]:
    """``pid`` and its children (the workers of ``--workers N``)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def measure(workers: int, seconds: float, connections: int) -> list[str]:
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
            processes = family(server.process.pid)
            load_before = os.getloadavg()[0]
            used = sum(cpu_seconds(pid) for pid in processes)
            began = time.monotonic()
            result = json.loads(subprocess.run(
                [sys.executable, __file__, "--probe", server.url.rsplit(":", 1)[1], key,
                 str(connections), str(seconds)], check=True, capture_output=True, text=True,
            ).stdout)
            cores = (sum(cpu_seconds(pid) for pid in processes) - used) / (time.monotonic() - began)
            load_after = os.getloadavg()[0]
        finally:
            server.stop()
    latencies = sorted(result["latencies"])
    return [str(workers), f"{result['rate']:,.0f}", f"{pct(latencies, 0.5) * 1000:.1f}",
            f"{pct(latencies, 0.99) * 1000:.1f}", f"{cores:.2f}", str(result["errors"]),
            f"{load_before:.1f} / {load_after:.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--probe", nargs=4, metavar=("PORT", "KEY", "CONNECTIONS", "SECONDS"))
    args = parser.parse_args()
    if args.probe:
        port, key, connections, seconds = args.probe
        probe(int(port), key, int(connections), float(seconds))
        return
    rows = [measure(n, args.seconds, args.connections) for n in (1, 2)]
    headers = ["workers", "requests/s", "p50 ms", "p99 ms", "server CPU (cores)", "non-200",
               "load average 1 min (before / after)"]
    print(table(headers, rows))
    write_section("workers", (
        "### Workers: `POST /ofrep/v1/evaluate/flags` (4 flags, server-side key), "
        "`--workers 1` vs `--workers 2`\n\n"
        f"`benchmarks/bench_workers.py`: {args.seconds:g} s over {args.connections} keep-alive "
        f"connections from one load-generator process (raw asyncio sockets) on the same "
        f"{os.cpu_count()}-core machine, SQLite. The load generator needs most of a core "
        "itself, so two workers and it share two cores: the server CPU column shows how much "
        "of the machine the workers got, and the gain from a second worker is bounded by "
        "what the load generator leaves.\n\n"
        + table(headers, rows)
    ))


if __name__ == "__main__":
    main()
