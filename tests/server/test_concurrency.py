"""No lost updates over HTTP: 8 threads race on one flag with If-Match;
exactly one write wins per version and the audit log holds exactly the winners."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from tests.server.conftest import ADMIN_SECRET, LiveServer, auth

THREADS = 8
ROUNDS = 5


def test_if_match_race_has_one_winner_per_version(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url, headers=auth(ADMIN_SECRET), timeout=30) as http:
        assert http.post("/flags", json={"key": "contended", "type": "boolean"}).status_code == 201
    results: list[tuple[int, int, str]] = []  # (if-match version, status, description)
    lock = threading.Lock()

    for round_ in range(ROUNDS):
        version = round_ + 1
        barrier = threading.Barrier(THREADS)

        def attempt(worker: int, version: int = version, barrier: threading.Barrier = barrier) -> None:
            description = f"v{version}-w{worker}"
            with httpx.Client(base_url=live_server.url, headers=auth(ADMIN_SECRET), timeout=30) as http:
                barrier.wait()
                response = http.patch(
                    "/flags/contended", json={"description": description},
                    headers={"If-Match": f'"{version}"'},
                )
            with lock:
                results.append((version, response.status_code, description))

        threads = [threading.Thread(target=attempt, args=(w,)) for w in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

    winners: list[str] = []
    for version in range(1, ROUNDS + 1):
        statuses = sorted(status for v, status, _ in results if v == version)
        assert statuses == [200] + [412] * (THREADS - 1), (version, statuses)
        winners += [d for v, status, d in results if v == version and status == 200]

    with httpx.Client(base_url=live_server.url, headers=auth(ADMIN_SECRET), timeout=30) as http:
        audit: list[dict[str, Any]] = http.get("/flags/contended/audit").json()["items"]
        final = http.get("/flags/contended").json()
    assert [a["action"] for a in audit] == ["created"] + ["updated"] * ROUNDS
    assert [a["after"]["description"] for a in audit[1:]] == winners
    assert final["version"] == ROUNDS + 1 and final["description"] == winners[-1]
