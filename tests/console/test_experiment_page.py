"""The exposures chart, experiment results with CI chart, and the SRM warning."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.console.conftest import ADMIN_SECRET, Secrets, sign_in


def test_experiment_page_draws_exposures_and_intervals_and_warns_of_srm(
    client: TestClient, secrets: Secrets
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    sdk = {"Authorization": f"Bearer {secrets.sdk}"}
    created = client.post("/flags", headers=admin, json={
        "key": "button", "type": "string", "kind": "experiment",
        "variants": {"control": "blue", "treatment": "green"}, "off_variant": "control",
        "environments": {"production": {"enabled": True}}})
    assert created.status_code == 201, created.text
    setup = client.put("/experiments/button?environment=production", headers=admin, json={
        "allocation": 100, "control": "control", "primary_metric": "checkout",
        "metric_kind": "conversion", "salt": "button-1",
        "variations": [{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]})
    assert setup.status_code == 200, setup.text
    assert client.post("/experiments/button/start?environment=production", headers=admin).status_code == 200
    now = datetime.now(UTC).isoformat()
    # 400 vs 200 users under a 50/50 split: a clear sample-ratio mismatch.
    events = [{"flag_key": "button", "variant": "control" if i < 400 else "treatment",
               "user_key": f"u{i}", "timestamp": now, "reason": "SPLIT", "flag_version": 3,
               "in_experiment": True} for i in range(600)]
    sent = client.post("/exposures", headers=sdk, json={"batch_id": str(uuid.uuid4()), "events": events})
    assert sent.status_code == 202, sent.text
    track = [{"metric": "checkout", "user_key": f"u{i}", "value": None, "timestamp": now}
             for i in range(0, 600, 5)]
    assert client.post("/track", headers=sdk, json={"batch_id": str(uuid.uuid4()), "events": track}).status_code == 202

    sign_in(client, secrets.viewer)
    page = client.get("/ui/flags/button/experiment?env=production")
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="srm-warning"' in html and "Sample ratio mismatch" in html
    assert "<polyline" in html and "Exposures per day and variant" in html
    assert "confidence intervals</title>" in html
    assert "control" in html and "treatment" in html
    hourly = client.get("/ui/flags/button/experiment?env=production&bucket=hour")
    assert hourly.status_code == 200
    assert 'href="/ui/flags/button/experiment?env=production"' in client.get("/ui/flags/button").text
    none_yet = client.get("/ui/flags/button/experiment?env=staging")
    assert none_yet.status_code == 200 and "No exposures recorded in staging" in none_yet.text
    assert 'id="srm-warning"' not in none_yet.text


def test_an_experiment_on_a_killed_flag_is_shown_as_reaching_nobody(
    client: TestClient, secrets: Secrets
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_SECRET}"}
    assert client.post("/flags", headers=admin, json={
        "key": "banner", "type": "boolean", "kind": "experiment",
        "environments": {"production": {"enabled": True}}}).status_code == 201
    assert client.put("/experiments/banner?environment=production", headers=admin, json={
        "control": "false", "primary_metric": "click", "salt": "banner-1",
        "variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}]}).status_code == 200
    assert client.post("/experiments/banner/start", headers=admin).status_code == 200
    sign_in(client, secrets.viewer)
    assert 'id="flag-off-warning"' not in client.get("/ui/flags/banner/experiment?env=production").text
    assert client.post("/flags/banner/environments/production/kill", json={}, headers=admin).status_code == 200
    page = client.get("/ui/flags/banner/experiment?env=production").text
    assert 'id="flag-off-warning"' in page and "nobody enters the experiment" in page
    assert "The flag is off in production" in client.get("/ui/flags/banner?env=production").text


def test_equal_exposure_series_get_their_own_shapes_and_do_not_cover_each_other() -> None:
    from flagstaff.server.console.charts import exposure_chart

    report = {"bucket": "day", "variants": [{"variant": "grey"}, {"variant": "green"}, {"variant": "red"}],
              "series": [{"start": "2026-12-04T00:00:00Z", "variant": v, "evaluations": 1500}
                         for v in ("grey", "green", "red")]}
    lines = exposure_chart(report)["lines"]
    assert len({line["shape"] for line in lines}) == 3
    assert len({line["dash"] for line in lines}) == 3
    assert [line["width"] for line in lines] == sorted((line["width"] for line in lines), reverse=True)
    starts = [float(line["markers"][0]["d"][1:].split(",")[0]) for line in lines]
    assert starts == sorted(starts) and min(b - a for a, b in itertools.pairwise(starts)) >= 8
    assert lines[1]["markers"][0]["title"] == "green, 2026-12-04 00:00: 1,500"
