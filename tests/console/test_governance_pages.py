"""The console's governed-change pages: the review page (diff, users reassigned, policy-checked
actions), schedules and webhooks; the same store methods and rules as the public API."""

from __future__ import annotations

import html
from typing import Any

from fastapi.testclient import TestClient

from flagstaff.store import Store
from tests.console.conftest import ADMIN_SECRET, Secrets, sign_in


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def rollout(true_weight: int) -> dict[str, Any]:
    return {"rollout": {"variations": [{"variant": "true", "weight": true_weight},
                                       {"variant": "false", "weight": 100 - true_weight}]}}


def setup_review(client: TestClient, store: Store, secrets: Secrets) -> int:
    """A flag at a 10 % rollout in production, a policy of one approval (not the author's) and
    erin's change request for 30 %; returns its id."""
    store.create_flag(definition={"key": "new-checkout", "type": "boolean", "environments": {
        "production": {"enabled": True, "fallthrough": rollout(10)}}}, actor="test")
    assert client.put("/environments/production/policy", json={"required_approvals": 1},
                      headers=auth(ADMIN_SECRET)).status_code == 200
    made = client.post("/change-requests", headers=auth(secrets.editor), json={
        "flag": "new-checkout", "environment": "production",
        "patch": {"fallthrough": rollout(30)}, "description": "30 % of users"})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_review_page_shows_the_diff_and_the_share_of_users_reassigned(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    change_id = setup_review(client, store, secrets)
    sign_in(client, ADMIN_SECRET)
    page = client.get(f"/ui/changes/{change_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "30 % of users" in text and "0/1 approvals" in text
    assert "environments.production.fallthrough" in text  # the diff
    # 10 % -> 30 % moves exactly the buckets between 10 and 30: a fifth of the users.
    assert "moves 20 % of its users to another variant" in text
    assert f'data-api="/ui/api/changes/{change_id}/approve"' in text  # admin is not the author
    listed = html.unescape(client.get("/ui/changes?status=open").text)
    assert f'href="/ui/changes/{change_id}"' in listed and "new-checkout" in listed


def test_a_change_that_moves_no_rollout_buckets_says_so(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    store.create_flag(definition={"key": "quiet", "type": "boolean", "environments": {
        "production": {"enabled": False}}}, actor="test")
    made = client.post("/change-requests", headers=auth(secrets.editor), json={
        "flag": "quiet", "environment": "production", "patch": {"enabled": True}})
    assert made.status_code == 201, made.text
    sign_in(client, ADMIN_SECRET)
    text = html.unescape(client.get(f"/ui/changes/{made.json()['id']}").text)
    assert "moves no users between a rollout's variants" in text
    assert "environments.production.enabled" in text


def test_author_cannot_approve_a_reviewer_can_and_apply_writes_the_flag(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    change_id = setup_review(client, store, secrets)
    csrf = sign_in(client, secrets.editor)  # erin, the author
    page = client.get(f"/ui/changes/{change_id}").text
    assert f'data-api="/ui/api/changes/{change_id}/approve"' not in page
    refused = client.post(f"/ui/api/changes/{change_id}/approve", json={},
                          headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403, refused.text
    assert "author" in refused.json()["error"]["message"]

    csrf = sign_in(client, ADMIN_SECRET)
    no_csrf = client.post(f"/ui/api/changes/{change_id}/approve", json={})
    assert no_csrf.status_code == 403
    approved = client.post(f"/ui/api/changes/{change_id}/approve", json={"comment": "ok"},
                           headers={"X-CSRF-Token": csrf})
    assert approved.status_code == 200, approved.text
    assert approved.json()["change_request"]["status"] == "approved"
    applied = client.post(f"/ui/api/changes/{change_id}/apply", json={}, headers={"X-CSRF-Token": csrf})
    assert applied.status_code == 200, applied.text
    assert applied.json()["change_request"]["status"] == "applied"
    served = store.get_flag(key="new-checkout").definition["environments"]["production"]["fallthrough"]
    assert served == rollout(30)
    text = html.unescape(client.get(f"/ui/changes/{change_id}").text)
    assert "applied" in text and "ok" in text  # the review comment is on the page


def test_viewers_see_no_review_controls_and_cannot_act(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    change_id = setup_review(client, store, secrets)
    csrf = sign_in(client, secrets.viewer)
    page = client.get(f"/ui/changes/{change_id}")
    assert page.status_code == 200 and "Approve</button>" not in page.text
    refused = client.post(f"/ui/api/changes/{change_id}/approve", json={},
                          headers={"X-CSRF-Token": csrf})
    assert refused.status_code == 403
    assert client.get("/ui/webhooks").status_code == 403  # admins only
    assert store.get_change_request(change_request_id=change_id).status == "open"


def test_schedules_page_creates_lists_and_cancels(client: TestClient, store: Store) -> None:
    store.create_flag(definition={"key": "night-mode", "type": "boolean", "environments": {
        "staging": {"enabled": False}}}, actor="test")
    csrf = sign_in(client, ADMIN_SECRET)
    bad = client.post("/ui/api/schedules", headers={"X-CSRF-Token": csrf}, json={
        "flag": "night-mode", "environment": "staging", "action": "enable", "at": "tomorrow"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "at"
    made = client.post("/ui/api/schedules", headers={"X-CSRF-Token": csrf}, json={
        "flag": "night-mode", "environment": "staging", "action": "enable",
        "at": "2030-01-01T09:00:00Z", "description": "launch night mode"})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["schedule"]["id"]
    text = html.unescape(client.get("/ui/schedules?status=pending").text)
    assert "launch night mode" in text and "2030-01-01 09:00 UTC" in text
    assert f'data-action="/ui/api/schedules/{schedule_id}"' in text
    cancelled = client.delete(f"/ui/api/schedules/{schedule_id}", headers={"X-CSRF-Token": csrf})
    assert cancelled.status_code == 200 and cancelled.json()["schedule"]["status"] == "cancelled"
    assert store.get_schedule(schedule_id=schedule_id).status == "cancelled"
    assert "No schedules with status pending" in client.get("/ui/schedules?status=pending").text


def test_webhooks_page_creates_a_subscription_and_shows_its_delivery_log(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, ADMIN_SECRET)
    refused = client.post("/ui/api/webhooks", headers={"X-CSRF-Token": csrf},
                          json={"url": "http://169.254.169.254/latest"})
    assert refused.status_code == 400  # link-local: never called
    made = client.post("/ui/api/webhooks", headers={"X-CSRF-Token": csrf}, json={
        "url": "https://hooks.example.com/flagstaff", "events": ["flag.*"], "format": "slack"})
    assert made.status_code == 201, made.text
    assert made.json()["secret"]
    hook = made.json()["webhook"]
    store.create_flag(definition={"key": "heard", "type": "boolean"}, actor="test")
    text = html.unescape(client.get("/ui/webhooks").text)
    assert "https://hooks.example.com/flagstaff" in text and "slack" in text
    detail = html.unescape(client.get(f"/ui/webhooks/{hook['id']}").text)
    assert "flag.created" in detail  # queued in the flag write's transaction
    ping = client.post(f"/ui/api/webhooks/{hook['id']}/ping", headers={"X-CSRF-Token": csrf})
    assert ping.status_code == 202
    assert "ping" in client.get(f"/ui/webhooks/{hook['id']}").text
