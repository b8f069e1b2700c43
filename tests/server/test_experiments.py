"""Experiments over HTTP: configuration, status machine, results against flagstaff.stats, SRM,
and stale flags in ``GET /flags?state=stale``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flagstaff.stats import (
    ConversionCounts,
    NumericMoments,
    conversion_results,
    numeric_results,
    srm_check,
)
from tests.builders import flag
from tests.server.conftest import Tokens, auth

EXPERIMENT = {"variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}],
              "control": "false", "primary_metric": "checkout", "salt": "exp-1"}
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def setup(client: TestClient, tokens: Tokens, **block: Any) -> None:
    assert client.post("/flags", json=flag("f").kind("experiment").on().build(),
                       headers=auth(tokens.editor)).status_code == 201
    put = client.put("/experiments/f", params={"environment": "production"},
                     json={**EXPERIMENT, **block}, headers=auth(tokens.editor))
    assert put.status_code == 200, put.text


def send(client: TestClient, tokens: Tokens, users: dict[str, int], converted: dict[str, int],
         *, values: dict[str, float] | None = None) -> None:
    """``users[variant]`` exposed users, the first ``converted[variant]`` of them convert."""
    exposures, events = [], []
    for variant, n in users.items():
        for i in range(n):
            user = f"{variant}-{i}"
            exposures.append({"flag_key": "f", "variant": variant, "user_key": user, "in_experiment": True,
                              "timestamp": T0.isoformat(), "reason": "SPLIT"})
            if i < converted[variant]:
                value = None if values is None else values[variant] * (1 + i % 3)
                events.append({"metric": "checkout", "user_key": user, "value": value,
                               "timestamp": (T0 + timedelta(minutes=1)).isoformat()})
    h = auth(tokens.sdk_server)
    assert client.post("/exposures", json={"batch_id": "e", "events": exposures}, headers=h).status_code == 202
    assert client.post("/track", json={"batch_id": "t", "events": events}, headers=h).status_code == 202


def test_status_machine_over_http(client: TestClient, tokens: Tokens) -> None:
    setup(client, tokens)
    e = auth(tokens.editor)
    bad = client.post("/experiments/f/pause", headers=e)
    assert bad.status_code == 409
    assert bad.json()["error"]["details"] == {"from": "draft", "to": "paused", "environment": "production"}
    assert "draft -> paused" in bad.json()["error"]["message"]
    started = client.post("/experiments/f/start", params={"environment": "production"}, headers=e)
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert started.headers["ETag"] == '"3"'
    frozen = client.put("/experiments/f", params={"environment": "production"}, json=EXPERIMENT, headers=e)
    assert frozen.status_code == 409
    assert client.post("/experiments/f/complete", headers=e).json()["status"] == "completed"
    assert client.post("/experiments/f/resume", headers=e).status_code == 409
    listed = client.get("/experiments", params={"status": "completed"}, headers=auth(tokens.viewer)).json()
    assert [(x["key"], x["environment"]) for x in listed["items"]] == [("f", "production")]
    audit = client.get("/flags/f/audit", headers=auth(tokens.viewer)).json()["items"]
    assert [a["action"] for a in audit][-2:] == ["experiment_started", "experiment_completed"]
    # the SDK snapshot carries the block, so SDKs assign users while it runs
    snap = client.get("/sdk/flags", headers=auth(tokens.sdk_server)).json()
    assert snap["flags"]["f"]["experiment"]["status"] == "completed"


def test_put_validation_names_the_field(client: TestClient, tokens: Tokens) -> None:
    client.post("/flags", json=flag("f").on().build(), headers=auth(tokens.editor))
    e, params = auth(tokens.editor), {"environment": "production"}
    cases = [({**EXPERIMENT, "control": "x"}, "environments.production.experiment.control"),
             ({**EXPERIMENT, "allocation": 150}, "environments.production.experiment.allocation"),
             ({**EXPERIMENT, "metric_kind": "ratio"}, "metric_kind"),
             ({k: v for k, v in EXPERIMENT.items() if k != "salt"}, "salt")]
    for body, field in cases:
        response = client.put("/experiments/f", params=params, json=body, headers=e)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["details"]["field"] == field
    assert client.put("/experiments/f", json=EXPERIMENT, headers=e).json()["error"]["details"]["field"] == "environment"
    # no experiment anywhere: a 404 that says so, not a request to name an environment
    missing = client.get("/experiments/f", headers=auth(tokens.viewer))
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == (
        "flag 'f' has no experiment in any environment; set one up first"
    )
    assert client.get("/experiments/nope/results", headers=auth(tokens.viewer)).status_code == 404


@pytest.mark.parametrize("sequential", [False, True])
def test_conversion_results_match_flagstaff_stats(client: TestClient, tokens: Tokens, sequential: bool) -> None:
    setup(client, tokens)
    send(client, tokens, {"false": 400, "true": 410}, {"false": 40, "true": 62})
    response = client.get("/experiments/f/results", params={"sequential": str(sequential).lower()},
                          headers=auth(tokens.viewer))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = conversion_results(ConversionCounts("false", 400, 40), [ConversionCounts("true", 410, 62)],
                                  sequential=sequential).to_dict()
    assert {k: body[k] for k in expected} == expected
    assert body["srm"] == srm_check({"false": 400, "true": 410}, {"false": 50.0, "true": 50.0}).to_dict()
    assert body["srm"]["mismatch"] is False and body["exposed_users"] == 810
    assert body["method"] == ("sequential" if sequential else "fixed")


def test_numeric_results_match_flagstaff_stats(client: TestClient, tokens: Tokens) -> None:
    setup(client, tokens, metric_kind="numeric")
    send(client, tokens, {"false": 30, "true": 30}, {"false": 20, "true": 25}, values={"false": 10.0, "true": 12.0})

    def moments(variant: str, n: int, k: int, base: float) -> NumericMoments:
        values = [base * (1 + i % 3) for i in range(k)] + [0.0] * (n - k)
        return NumericMoments(variant, n, sum(values), sum(v * v for v in values))

    expected = numeric_results(moments("false", 30, 20, 10.0), [moments("true", 30, 25, 12.0)]).to_dict()
    body = client.get("/experiments/f/results", headers=auth(tokens.viewer)).json()
    assert body["metric_type"] == "numeric"
    assert body["variants"] == expected["variants"]
    assert body["comparisons"][0]["p_value"] == pytest.approx(expected["comparisons"][0]["p_value"], rel=1e-9)


def test_planted_sample_ratio_mismatch_is_flagged_and_logged(
    client: TestClient, tokens: Tokens, caplog: pytest.LogCaptureFixture
) -> None:
    setup(client, tokens)
    send(client, tokens, {"false": 1000, "true": 800}, {"false": 100, "true": 80})
    with caplog.at_level(logging.WARNING, logger="flagstaff.server.experiments"):
        body = client.get("/experiments/f/results", headers=auth(tokens.viewer)).json()
    assert body["srm"]["mismatch"] is True and body["srm"]["p_value"] < 0.001
    assert body["srm"]["share_deviation"] is True  # 55.6 % vs 50 %
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "sample ratio mismatch" in r.getMessage()]
    assert len(warnings) == 1 and "f" in warnings[0].getMessage()


def test_stale_flags_listed_with_reason(app: FastAPI, client: TestClient, tokens: Tokens) -> None:
    for key, kind in [("old", "release"), ("busy", "release"), ("switch", "kill-switch")]:
        client.post("/flags", json=flag(key).kind(kind).on().build(), headers=auth(tokens.editor))
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    app.state.clock = lambda: now
    for i, day in enumerate((55, 50, 45, 20)):
        at = now - timedelta(days=day)
        counts = [{"flag_key": "busy", "variant": v, "count": 5} for v in ("true", "false")]
        if day > 40:
            counts += [{"flag_key": "old", "variant": "true", "count": 1},
                       {"flag_key": "switch", "variant": "true", "count": 1}]
        client.post("/evaluation-counts", headers=auth(tokens.sdk_server), json={
            "batch_id": f"w{i}", "window_start": at.isoformat(), "window_end": at.isoformat(), "counts": counts})
    client.post("/evaluation-counts", headers=auth(tokens.sdk_server), json={
        "batch_id": "recent", "window_start": (now - timedelta(days=1)).isoformat(),
        "window_end": (now - timedelta(days=1)).isoformat(),
        "counts": [{"flag_key": "busy", "variant": "true", "count": 1}]})
    response = client.get("/flags", params={"state": "stale"}, headers=auth(tokens.viewer))
    assert response.status_code == 200
    items = response.json()["items"]
    assert [i["key"] for i in items] == ["old"]
    assert items[0]["stale_reason"] == "not evaluated for 45 days"
    assert items[0]["last_evaluated_at"] == (now - timedelta(days=45)).isoformat().replace("+00:00", ".000000Z")
    # configurable: within a 15-day window "busy" served only "true"
    app.state.settings.stale_release_days = 15
    keys = [i["key"] for i in client.get("/flags", params={"state": "stale"}, headers=auth(tokens.viewer)).json()["items"]]
    assert keys == ["busy", "old"]
    assert client.get("/flags", params={"state": "zombie"}, headers=auth(tokens.viewer)).status_code == 400


def test_an_experiment_on_a_flag_that_is_off_cannot_start_and_the_console_says_so(
    client: TestClient, tokens: Tokens
) -> None:
    h = auth(tokens.editor)
    assert client.post("/flags", json=flag("f").kind("experiment").build(), headers=h).status_code == 201
    assert client.put("/experiments/f", params={"environment": "production"}, json=EXPERIMENT,
                      headers=h).status_code == 200
    version = client.get("/flags/f", headers=h).json()["version"]
    refused = client.post("/experiments/f/start", params={"environment": "production"}, headers=h)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "flag_off" and "is off in 'production'" in error["message"]
    assert "flags toggle f --on --env production" in error["message"]
    after = client.get("/flags/f", headers=h).json()
    assert after["version"] == version and after["environments"]["production"]["experiment"]["status"] == "draft"

    # On, it starts; killed while running, it cannot be resumed after a pause until it is on again.
    assert client.patch("/flags/f/environments/production", json={"enabled": True}, headers=h).status_code == 200
    assert client.post("/experiments/f/start", headers=h).status_code == 200
    assert client.post("/experiments/f/pause", headers=h).status_code == 200
    assert client.post("/flags/f/environments/production/kill", json={}, headers=h).status_code == 200
    assert client.post("/experiments/f/resume", headers=h).json()["error"]["code"] == "flag_off"
