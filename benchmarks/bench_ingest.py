"""Ingestion benchmark: exposures and metric events per second into SQLite (issue 6 §2).

Target: ≥ 50,000 events/s on SQLite in batches of 1,000.  Measures the store path the
``POST /exposures`` and ``POST /track`` handlers call (validation + batch-id claim + one
executemany in one transaction, ``synchronous=FULL``), and the full HTTP path through the app
(JSON parsing, auth, pydantic) with FastAPI's TestClient, which runs in-process and so leaves
out only the socket.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--events 200000] [--no-write]`` (writes
the "ingest" section of docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import table, write_section

from flagstaff.store import Store

BATCH = 1_000
TARGET = 50_000


def exposures(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"flag_key": "new-checkout", "variant": "treatment" if i % 2 else "control",
             "user_key": f"user-{offset + i}", "timestamp": "2025-03-01T10:00:00.123Z",
             "reason": "SPLIT", "flag_version": 3, "in_experiment": True} for i in range(n)]


def metric_events(n: int, offset: int) -> list[dict[str, Any]]:
    return [{"metric": "checkout", "user_key": f"user-{offset + i}", "value": None if i % 3 else 9.99,
             "timestamp": "2025-03-01T10:05:00Z"} for i in range(n)]


def rate(total: int, send: Callable[[int], None]) -> float:
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
            "exposures (store)": rate(total, lambda o: store.ingest_exposures(
                environment="production", batch_id=str(uuid.uuid4()), events=batches[o])),
            "metric events (store)": rate(total, lambda o: store.ingest_metric_events(
                environment="production", batch_id=str(uuid.uuid4()), events=tracks[o])),
        }
    finally:
        store.close()


def http_rates(directory: Path, total: int) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from flagstaff.server.app import create_app
    from flagstaff.server.settings import Settings

    settings = Settings(database_url=f"sqlite:///{directory / 'http.db'}", demo=False,
                        bootstrap_token="fsm_bench-admin-0123456789abcdef", log_level="WARNING")
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": "Bearer fsm_bench-admin-0123456789abcdef"}
        key = client.post("/tokens", headers=admin, json={
            "name": "bench", "kind": "sdk-server", "environment": "production"}).json()["secret"]
        h = {"Authorization": f"Bearer {key}"}
        batches = {o: exposures(BATCH, o) for o in range(0, total, BATCH)}

        def send(o: int) -> None:
            response = client.post("/exposures", headers=h,
                                   json={"batch_id": str(uuid.uuid4()), "events": batches[o]})
            assert response.status_code == 202, response.text

        return {"exposures (HTTP, in-process)": rate(total, send)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events per measurement")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="exp_bench_ingest_") as tmp:
        results = store_rates(Path(tmp), args.events) | http_rates(Path(tmp), min(args.events, 50_000))
    rows = [[name, f"{value:,.0f}", "yes" if value >= TARGET else "no"]
            for name, value in results.items()]
    markdown = (f"Ingestion into SQLite (WAL, synchronous=FULL), batches of {BATCH:,}; "
                f"target ≥ {TARGET:,} events/s on the store path.\n\n"
                + table(["path", "events/s", f"≥ {TARGET:,}"], rows))
    print(markdown)
    if not args.no_write:
        write_section("ingest", markdown)


if __name__ == "__main__":
    main()
