"""``flagstaff experiments``: list, status changes and results (with a visible SRM warning)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from tests.cli.conftest import Result, Server

EXPERIMENT = {"variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}],
              "control": "false", "primary_metric": "signup", "salt": "cli-exp"}


def test_experiment_commands_and_srm_warning(server: Server, cli: Callable[..., Result]) -> None:
    base = ("--url", server.url, "--token", server.token)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        admin.post("/flags", json={"key": "cli-exp", "type": "boolean", "environments": {"production": {"enabled": True}}})
        assert admin.put("/experiments/cli-exp", params={"environment": "production"}, json=EXPERIMENT).status_code == 200
        sdk_key = admin.post("/tokens", json={"name": "cli", "kind": "sdk-server", "environment": "production"}).json()["secret"]

    listed = cli(*base, "experiments", "list", "--output", "json")
    assert [(x["key"], x["status"]) for x in json.loads(listed.out)["items"]] == [("cli-exp", "draft")]
    refused = cli(*base, "experiments", "pause", "cli-exp")
    assert refused.code == 1 and "draft -> paused" in refused.err
    started = cli(*base, "experiments", "start", "cli-exp", "--env", "production")
    assert started.code == 0 and "running" in started.out

    # a planted sample ratio mismatch: 1,000 vs 800 exposed users on a 50/50 allocation, recorded
    # after the start (only the run's own exposures count)
    now = datetime.now(UTC)
    exposures = [{"flag_key": "cli-exp", "variant": v, "user_key": f"{v}-{i}", "in_experiment": True,
                  "timestamp": now.isoformat(), "reason": "SPLIT"}
                 for v, n in (("false", 1000), ("true", 800)) for i in range(n)]
    events = [{"metric": "signup", "user_key": f"{v}-{i}", "value": None, "timestamp": (now + timedelta(minutes=1)).isoformat()}
              for v, n in (("false", 100), ("true", 120)) for i in range(n)]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {sdk_key}"}) as sdk:
        assert sdk.post("/exposures", json={"batch_id": "cli-e", "events": exposures}).status_code == 202
        assert sdk.post("/track", json={"batch_id": "cli-t", "events": events}).status_code == 202

    shown = cli(*base, "experiments", "results", "cli-exp")
    assert shown.code == 0, shown.err
    assert "WARNING: sample ratio mismatch" in shown.out and "MISMATCH" in shown.out
    assert "10.00%" in shown.out and "15.00%" in shown.out  # the two conversion rates
    data = json.loads(cli(*base, "experiments", "results", "cli-exp", "-o", "json").out)
    assert data["srm"]["mismatch"] is True
    assert [v["users"] for v in data["variants"]] == [1000, 800]
    assert cli(*base, "experiments", "complete", "cli-exp").code == 0
