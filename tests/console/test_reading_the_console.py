"""What the console tells a person at a glance: killed apart from off (who, when, why), a
running experiment, evaluation counts, pipeline order, the audit log's paging and filters, a
revert as a new audited write, and experiment results in plain words."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from flagstaff.store import Store
from tests.console.conftest import ADMIN_SECRET, Secrets, csrf_of, sign_in

ADMIN = {"Authorization": f"Bearer {ADMIN_SECRET}"}


def _flag(client: TestClient, key: str, **extra: object) -> None:
    body = {"key": key, "type": "boolean", **extra}
    assert client.post("/flags", headers=ADMIN, json=body).status_code == 201


def test_killed_reads_apart_from_off_with_who_when_and_why(client: TestClient, secrets: Secrets) -> None:
    _flag(client, "pay", environments={"production": {"enabled": True}, "staging": {"enabled": True}})
    killed = client.post("/flags/pay/environments/production/kill", headers=ADMIN,
                         json={"reason": "card errors after deploy 4812"})  # fmt: skip
    assert killed.status_code == 200, killed.text
    assert client.patch("/flags/pay/environments/staging", headers=ADMIN,
                        json={"enabled": False}).status_code == 200  # fmt: skip
    sign_in(client, secrets.viewer)
    html = client.get("/ui/flags/pay").text
    production = re.search(r'data-switch-note="production">(.*?)</div>', html, re.S)
    staging = re.search(r'data-switch-note="staging">(.*?)</div>', html, re.S)
    assert production and staging
    assert "Killed" in production[1] and "card errors after deploy 4812" in production[1]
    assert "bootstrap" in production[1] or "admin" in production[1]
    assert "Turned off" in staging[1] and "Killed" not in staging[1]
    assert "✕ Killed" in html  # the read-only pill


def test_console_kill_keeps_the_reason(client: TestClient, secrets: Secrets, store: Store) -> None:
    _flag(client, "k2", environments={"production": {"enabled": True}})
    page = sign_in(client, secrets.editor)
    csrf = csrf_of(client.get("/ui/flags/k2").text)
    answer = client.post("/ui/api/flags/k2/environments/production/kill",
                         headers={"X-CSRF-Token": csrf, "If-Match": '"1"'},
                         json={"reason": "incident 77"})  # fmt: skip
    assert answer.status_code == 200, (page, answer.text)
    [record] = store.list_audit(target_key="k2", action="killed").items
    assert record.context == {"reason": "incident 77"}


def test_flag_page_shows_a_running_experiment_and_evaluation_counts(
    client: TestClient, secrets: Secrets
) -> None:
    _flag(client, "exp", environments={"production": {"enabled": True}})
    client.put("/experiments/exp?environment=production", headers=ADMIN, json={
        "control": "false", "primary_metric": "signup", "salt": "s",
        "variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}]})
    assert client.post("/experiments/exp/start?environment=production", headers=ADMIN).status_code == 200
    now = datetime.now(UTC).replace(microsecond=0)
    counts = {"batch_id": str(uuid.uuid4()), "window_start": (now - timedelta(minutes=1)).isoformat(),
              "window_end": now.isoformat(),
              "counts": [{"flag_key": "exp", "variant": "true", "count": 1200},
                         {"flag_key": "exp", "variant": "false", "count": 34}]}  # fmt: skip
    sent = client.post("/evaluation-counts", headers={"Authorization": f"Bearer {secrets.sdk}"}, json=counts)
    assert sent.status_code == 202, sent.text
    sign_in(client, secrets.viewer)
    html = client.get("/ui/flags/exp").text
    banner = re.search(r'data-experiment-env="production"[^>]*>(.*?)</div>', html, re.S)
    assert banner and "running" in banner[1] and "signup" in banner[1]
    usage = re.search(r'data-usage-env="production">(.*?)</tr>', html, re.S)
    assert usage and "1,234" in usage[1] and "1,200" in usage[1] and "34" in usage[1]
    # archiving a flag still in use warns with the count
    sign_in(client, secrets.editor)
    assert "is still in use: evaluated 1,234 times" in client.get("/ui/flags/exp").text


def test_environments_in_pipeline_order_and_the_new_flag_owner_field(
    client: TestClient, secrets: Secrets
) -> None:
    for key in ("qa", "alpha"):
        assert client.post("/environments", headers=ADMIN, json={"key": key}).status_code == 201
    _flag(client, "ordered")
    sign_in(client, secrets.editor)
    html = client.get("/ui/flags").text
    head = re.search(r"<thead>(.*?)</thead>", html, re.S)
    assert head is not None
    columns = re.findall(r'<th scope="col"[^>]*><a class="sort-link"[^>]*>([a-z]+)</a></th>', head[1])
    assert columns == ["development", "staging", "production", "alpha", "qa"]
    assert 'name="owner"' in html
    assert client.get("/favicon.ico").status_code == 200


def test_audit_log_pages_newest_first_with_environment_and_date_filters(
    client: TestClient, secrets: Secrets
) -> None:
    _flag(client, "busy")
    for i in range(60):
        env = "production" if i % 2 else "staging"
        client.patch(f"/flags/busy/environments/{env}", headers=ADMIN, json={"enabled": i % 4 < 2})
    sign_in(client, secrets.viewer)
    first = client.get("/ui/audit").text
    assert first.count('class="audit-entry"') == 50 and 'id="audit-older"' in first
    older = re.search(r'id="audit-older" href="([^"]+)"', first)
    assert older
    second = client.get(older[1].replace("&amp;", "&")).text
    assert 0 < second.count('class="audit-entry"') <= 50 and "Newest" in second
    production = client.get("/ui/audit?environment=production").text
    assert 'in <span class="tag">production</span>' in production
    assert 'in <span class="tag">staging</span>' not in production
    today = datetime.now(UTC).date().isoformat()
    assert client.get(f"/ui/audit?since={today}&until={today}").text.count('class="audit-entry"') == 50
    future = client.get("/ui/audit?since=2999-01-01").text
    assert "No records match." in future


def test_revert_to_a_version_is_a_new_audited_write(
    client: TestClient, secrets: Secrets, store: Store
) -> None:
    _flag(client, "rev", description="first")
    client.patch("/flags/rev", headers=ADMIN, json={"description": "second"})
    sign_in(client, secrets.editor)
    history = client.get("/ui/flags/rev/history").text
    assert "/ui/api/flags/rev/revert?version=1" in history
    assert "/ui/api/flags/rev/revert?version=2" not in history  # the current version
    csrf = csrf_of(history)
    reverted = client.post("/ui/api/flags/rev/revert?version=1",
                           headers={"X-CSRF-Token": csrf, "If-Match": '"2"'})  # fmt: skip
    assert reverted.status_code == 200, reverted.text
    flag = store.get_flag(key="rev")
    assert (flag.version, flag.definition["description"]) == (3, "first")
    last = store.list_audit(target_key="rev", newest_first=True, limit=1).items[0]
    assert last.context == {"reverted_to": 1} and last.action == "updated"
    assert "reverted to version 1" in client.get("/ui/flags/rev/history").text
    stale = client.post("/ui/api/flags/rev/revert?version=2",
                        headers={"X-CSRF-Token": csrf, "If-Match": '"2"'})  # fmt: skip
    assert stale.status_code == 412
    missing = client.post("/ui/api/flags/rev/revert?version=99",
                          headers={"X-CSRF-Token": csrf, "If-Match": '"3"'})  # fmt: skip
    assert missing.status_code == 404


def test_experiment_results_read_plainly(client: TestClient, secrets: Secrets) -> None:
    _flag(client, "plain", environments={"production": {"enabled": True}})
    client.put("/experiments/plain?environment=production", headers=ADMIN, json={
        "control": "false", "primary_metric": "buy", "salt": "p",
        "variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}]})
    client.post("/experiments/plain/start?environment=production", headers=ADMIN)
    sign_in(client, secrets.viewer)
    empty = client.get("/ui/flags/plain/experiment?env=production").text
    assert 'id="no-data"' in empty and "No data yet" in empty and "- -" not in empty

    now = datetime.now(UTC).isoformat()
    sdk = {"Authorization": f"Bearer {secrets.sdk}"}
    exposures = [{"flag_key": "plain", "variant": v, "user_key": f"{v}{i}", "timestamp": now,
                  "reason": "SPLIT", "in_experiment": True} for v in ("false", "true") for i in range(1000)]
    events = [{"metric": "buy", "user_key": f"{v}{i}", "value": None, "timestamp": now}
              for v, n in (("false", 100), ("true", 150)) for i in range(n)]
    assert client.post("/exposures", headers=sdk, json={"batch_id": str(uuid.uuid4()), "events": exposures}).status_code == 202
    assert client.post("/track", headers=sdk, json={"batch_id": str(uuid.uuid4()), "events": events}).status_code == 202
    html = client.get("/ui/flags/plain/experiment?env=production").text
    table = re.search(r'id="results-table">(.*?)</table>', html, re.S)
    assert table
    assert "+5.00 pp" in table[1] and "confidence interval" in table[1]
    assert re.search(r"[+-]\d\.\d\d to [+-]\d\.\d\d pp", table[1])
    assert "Adjusted p" not in html and "Holm" not in html and "p-value" in table[1]
    verdict = re.search(r'id="verdict"[^>]*>(.*?)</ul>', html, re.S)
    assert verdict and "true is better than false" in verdict[1]
    assert "+5.00 percentage points" in verdict[1] and "split as configured" in verdict[1]
    assert "Exposures per day" in html and "Evaluations per" not in html
