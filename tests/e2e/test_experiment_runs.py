"""Two runs of one experiment on one flag, through a real server process and the CLI.

Run 1 (salt ``runs-1``, 50/50) and run 2 (salt ``runs-2``, 30/70) share most of their users;
each run's exposures and conversions are planted with the variant the engine assigns under that
run's salt.  Each run's results must equal what its own planted data give (users and conversions
per variant, no user seen in several variants, no SRM against its own weights), whichever run is
read and in whatever order; the CLI shows the run and the users left out.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from flagstaff.engine import compile_snapshot
from tests.builders import snapshot
from tests.cli.conftest import Result, Server

KEY = "runs-checkout"
SERVER_FIELDS = ("version", "state", "created_at", "updated_at", "default_value")


def _admin(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                        timeout=30)


def _plant(server: Server, sdk_key: str, users: range, rates: dict[str, float], seed: int) -> dict[str, Any]:
    """Exposures and conversions of ``users`` under the flag as the server holds it now."""
    with _admin(server) as admin:
        definition = admin.get(f"/flags/{KEY}").json()
    version = definition["version"]
    snap = compile_snapshot(snapshot([{k: v for k, v in definition.items() if k not in SERVER_FIELDS}]))
    rng = random.Random(seed)
    assigned: dict[str, str] = {}
    converted: Counter[str] = Counter()
    now = datetime.now(UTC).isoformat()
    exposures, events = [], []
    for i in users:
        user = f"user-{i}"
        detail = snap.evaluate(KEY, {"key": user})
        assert detail.in_experiment and detail.variant is not None
        assigned[user] = detail.variant
        exposures.append({"flag_key": KEY, "variant": detail.variant, "user_key": user, "timestamp": now,
                          "reason": "SPLIT", "flag_version": version, "in_experiment": True})
        if rng.random() < rates[detail.variant]:
            converted[detail.variant] += 1
            events.append({"metric": "checkout", "user_key": user, "value": None, "timestamp": now})
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {sdk_key}"}, timeout=30) as sdk:
        assert sdk.post("/exposures", json={"batch_id": str(uuid.uuid4()), "events": exposures}).status_code == 202
        assert sdk.post("/track", json={"batch_id": str(uuid.uuid4()), "events": events}).status_code == 202
    return {"users": Counter(assigned.values()), "conversions": converted, "assigned": assigned}


def _check(results: dict[str, Any], planted: dict[str, Any], number: int, salt: str) -> None:
    assert results["run"]["number"] == number and results["run"]["salt"] == salt
    assert {v["variant"]: v["users"] for v in results["variants"]} == dict(planted["users"])
    assert {v["variant"]: v["conversions"] for v in results["variants"]} == {
        v: planted["conversions"][v] for v in planted["users"]}
    assert results["exposed_users"] == sum(planted["users"].values())
    assert results["multiple_variant_users"] == 0
    assert results["srm"]["mismatch"] is False


def test_each_run_reports_only_its_own_users(server: Server, cli: Callable[..., Result]) -> None:
    base = ("--url", server.url, "--token", server.token)
    with _admin(server) as admin:
        assert admin.post("/flags", json={
            "key": KEY, "type": "string", "kind": "experiment",
            "variants": {"control": "old", "treatment": "new"}, "off_variant": "control",
            "environments": {"production": {"enabled": True, "fallthrough": {"variant": "control"}}},
        }).status_code == 201
        first = {"variations": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}],
                 "control": "control", "primary_metric": "checkout", "salt": "runs-1"}
        assert admin.put(f"/experiments/{KEY}", params={"environment": "production"}, json=first).status_code == 200
        assert admin.post(f"/experiments/{KEY}/start").status_code == 200
        sdk_key = admin.post("/tokens", json={"name": "runs", "kind": "sdk-server",
                                              "environment": "production"}).json()["secret"]
    time.sleep(0.01)
    run1 = _plant(server, sdk_key, range(0, 3000), {"control": 0.10, "treatment": 0.15}, seed=1)
    time.sleep(0.01)

    with _admin(server) as admin:
        assert admin.post(f"/experiments/{KEY}/complete").status_code == 200
        second = {**first, "salt": "runs-2",
                  "variations": [{"variant": "control", "weight": 30}, {"variant": "treatment", "weight": 70}]}
        assert admin.put(f"/experiments/{KEY}", params={"environment": "production"}, json=second).status_code == 200
        assert admin.post(f"/experiments/{KEY}/start").status_code == 200
        # Right after the start the new run has no data of its own.
        empty = admin.get(f"/experiments/{KEY}/results").json()
        assert empty["run"]["number"] == 2 and empty["exposed_users"] == 0
        assert empty["multiple_variant_users"] == 0 and empty["srm"]["mismatch"] is False
    time.sleep(0.01)
    # Users 1000-2999 were in run 1 too, many of them now in the other variant (another salt).
    run2 = _plant(server, sdk_key, range(1000, 4000), {"control": 0.20, "treatment": 0.05}, seed=2)
    moved = sum(run1["assigned"][u] != v for u, v in run2["assigned"].items() if u in run1["assigned"])
    assert moved > 500  # the mix that unscoped results would have shown

    with _admin(server) as admin:
        _check(admin.get(f"/experiments/{KEY}/results").json(), run2, 2, "runs-2")
        _check(admin.get(f"/experiments/{KEY}/results", params={"run": 1}).json(), run1, 1, "runs-1")
        runs = admin.get(f"/experiments/{KEY}/runs").json()["items"]
        assert [(r["number"], r["salt"], r["ended_at"] is None) for r in runs] == [
            (1, "runs-1", False), (2, "runs-2", True)]
        missing = admin.get(f"/experiments/{KEY}/results", params={"run": 3})
        assert missing.status_code == 404 and "no run 3" in missing.json()["error"]["message"]

    shown = cli(*base, "experiments", "results", KEY, "--run", "1", "-o", "json")
    assert shown.code == 0, shown.err
    _check(json.loads(shown.out), run1, 1, "runs-1")
    text = cli(*base, "experiments", "results", KEY)
    assert text.code == 0, text.err
    assert "run 2 (salt runs-2)" in text.out
    assert f"exposed users: {sum(run2['users'].values())}; seen in several variants and left out of the analysis: 0" in text.out
    listed = cli(*base, "experiments", "runs", KEY)
    assert listed.code == 0 and "runs-1" in listed.out and "runs-2" in listed.out and "(open)" in listed.out
