"""A simulated experiment end to end.

A real server process; the SDK evaluates a running experiment for 20,000 simulated users
(assignment by the engine), records exposures and conversions through the HTTP API with a
planted lift (control 10 %, treatment 12 %); ``GET /experiments/{key}/results`` and
``flagstaff experiments results`` must show the planted effect inside the 95 % interval and no
sample ratio mismatch.  A second run in a subprocess shows the same users get the same variants.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable

import httpx

from flagstaff.sdk import Client
from tests.cli.conftest import Result, Server

USERS = 20_000
RATES = {"control": 0.10, "treatment": 0.12}
EXPERIMENT = {"allocation": 100, "variations": [{"variant": "control", "weight": 50},
                                                {"variant": "treatment", "weight": 50}],
              "control": "control", "primary_metric": "checkout", "salt": "checkout-exp-1"}
ASSIGN = """
import json, sys
from flagstaff.sdk import Client
client = Client(sys.argv[1], sdk_key=sys.argv[2], exposures="off")
assert client.wait_until_ready(10)
print(json.dumps([client.detail("new-checkout", {"key": f"user-{i}"}).variant for i in range(500)]))
client.close()
"""


def _admin(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"},
                        timeout=30)


def test_simulated_experiment_recovers_the_planted_lift(
    server: Server, cli: Callable[..., Result]
) -> None:
    with _admin(server) as admin:
        definition = {"key": "new-checkout", "type": "string", "kind": "experiment",
                      "variants": {"control": "old", "treatment": "new"}, "off_variant": "control",
                      "environments": {"production": {"enabled": True, "fallthrough": {"variant": "control"}}}}
        assert admin.post("/flags", json=definition).status_code == 201
        assert admin.put("/experiments/new-checkout", params={"environment": "production"},
                         json=EXPERIMENT).status_code == 200
        assert admin.post("/experiments/new-checkout/start").json()["status"] == "running"
        sdk_key = admin.post("/tokens", json={"name": "e2e", "kind": "sdk-server",
                                              "environment": "production"}).json()["secret"]

    client = Client(server.url, sdk_key=sdk_key)
    assigned: dict[str, str] = {}
    try:
        assert client.wait_until_ready(10)
        rng = random.Random(20250301)
        for i in range(USERS):
            context = {"key": f"user-{i}"}
            detail = client.detail("new-checkout", context)
            assert detail.in_experiment and detail.variant is not None
            assigned[context["key"]] = detail.variant
            if rng.random() < RATES[detail.variant]:
                client.track("checkout", context)
            if i % 1000 == 999:
                client.flush()  # keep the bounded queue from dropping in this tight loop
        client.flush()
        assert client.recorder is not None and client.recorder.dropped == 0
    finally:
        client.close()

    with _admin(server) as admin:
        results = admin.get("/experiments/new-checkout/results").json()
    users = {v["variant"]: v["users"] for v in results["variants"]}
    assert users == dict(Counter(assigned.values()))
    assert sum(users.values()) == USERS
    assert results["srm"]["mismatch"] is False
    lift = results["comparisons"][0]
    assert lift["variant"] == "treatment"
    planted = RATES["treatment"] - RATES["control"]
    assert lift["absolute_ci"]["lower"] <= planted <= lift["absolute_ci"]["upper"]
    assert lift["relative_ci"]["lower"] <= planted / RATES["control"] <= lift["relative_ci"]["upper"]
    assert lift["significant"] is True

    shown = cli("--url", server.url, "--token", server.token, "experiments", "results", "new-checkout")
    assert shown.code == 0, shown.err
    assert "treatment" in shown.out and "SRM: chi-square p" in shown.out and "(ok)" in shown.out
    assert "WARNING" not in shown.out
    as_json = cli("--url", server.url, "--token", server.token, "experiments", "results", "new-checkout",
                  "--sequential", "--output", "json")
    assert json.loads(as_json.out)["method"] == "sequential"

    # persistence across processes: a fresh interpreter assigns the same users identically
    out = subprocess.run([sys.executable, "-c", ASSIGN, server.url, sdk_key], capture_output=True,
                         text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == [assigned[f"user-{i}"] for i in range(500)]
