"""The fleet view: reports in (body and headers), ``GET /fleet``, instances, metrics, spoofing."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi import FastAPI

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from tests.builders import flag
from tests.server.conftest import ADMIN_SECRET, TestClient, Tokens, auth, create_token


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    # Flush reports at once so reads see them without waiting a second.
    return create_app(settings.model_copy(update={"fleet_flush_interval_seconds": 0.05}))


def flush(client: TestClient) -> None:
    client.app.state.fleet.collector.flush()  # type: ignore[attr-defined]
    client.app.state.fleet.view._cached = None  # type: ignore[attr-defined]


def report(client: TestClient, key: str, *reports: dict[str, Any]) -> Any:
    return client.post("/fleet/reports", json={"reports": list(reports)}, headers=auth(key))


def fleet(client: TestClient, **params: Any) -> dict[str, Any]:
    flush(client)
    response = client.get("/fleet", params=params, headers=auth(ADMIN_SECRET))
    assert response.status_code == 200, response.text
    return dict(response.json())


def env_of(view: dict[str, Any], name: str) -> dict[str, Any]:
    return next(e for e in view["environments"] if e["environment"] == name)


def change(client: TestClient, key: str = "beta") -> int:
    """Create a flag that is on in production and kill it there; returns the kill's event id."""
    body = flag(key).env("production", lambda e: e.on()).build()
    assert client.post("/flags", json=body, headers=auth(ADMIN_SECRET)).status_code == 201
    response = client.post(f"/flags/{key}/environments/production/kill",
                           headers=auth(ADMIN_SECRET))
    assert response.status_code == 200, response.text
    audit = client.get(f"/flags/{key}/audit", headers=auth(ADMIN_SECRET)).json()["items"]
    return int(audit[-1]["event_id"])


def test_reports_add_up_per_environment_against_the_latest_change(
    client: TestClient, tokens: Tokens
) -> None:
    first = change(client, "one")
    latest = change(client, "two")
    assert latest > first
    assert report(client, tokens.sdk_server,
                  {"instance": "web-1-aaaaaaaa", "version": latest, "sdk": "flagstaff-python/0.1",
                   "host": "web-1", "pid": 10},
                  {"instance": "web-2-aaaaaaaa", "version": first},
                  {"instance": "relay-aaaaaaaa", "kind": "relay", "version": latest}).status_code == 202
    view = fleet(client)
    assert view["latest_version"] == latest and view["version"] == latest
    prod = env_of(view, "production")
    assert prod["sdks"]["instances"] == 2 and prod["sdks"]["current"] == 1
    assert prod["sdks"]["behind"] == 1 and prod["sdks"]["percent"] == 50.0
    assert prod["sdks"]["oldest_version"] == first
    assert prod["relays"]["instances"] == 1 and prod["relays"]["current"] == 1
    assert {v["version"]: v["sdks"] for v in prod["versions"]} == {latest: 1, first: 1}
    # Judged against the older change, both SDK instances have it.
    older = env_of(fleet(client, version=first), "production")
    assert older["sdks"]["current"] == 2 and older["sdks"]["percent"] == 100.0


def test_an_instance_moves_forward_and_a_leaving_one_is_forgotten(
    client: TestClient, tokens: Tokens
) -> None:
    latest = change(client)
    report(client, tokens.sdk_server, {"instance": "app-aaaaaaaa", "version": latest - 1})
    flush(client)
    assert env_of(fleet(client), "production")["sdks"]["current"] == 0
    report(client, tokens.sdk_server, {"instance": "app-aaaaaaaa", "version": latest})
    assert env_of(fleet(client), "production")["sdks"]["current"] == 1
    report(client, tokens.sdk_server, {"instance": "app-aaaaaaaa", "version": latest, "left": True})
    assert fleet(client)["environments"] == []


def test_headers_on_polls_and_ingestion_are_reports(client: TestClient, tokens: Tokens) -> None:
    latest = change(client)
    headers = {**auth(tokens.sdk_server), "Flagstaff-Instance": "poller-aaaaaaaa",
               "Flagstaff-Version": str(latest)}
    assert client.get("/sdk/flags", headers=headers).status_code == 200
    counts = {"batch_id": "b-1", "window_start": "2025-01-01T00:00:00Z",
              "window_end": "2025-01-01T00:01:00Z", "counts": []}
    headers2 = {**auth(tokens.sdk_client), "Flagstaff-Instance": "browser-aaaaaaaa",
                "Flagstaff-Version": str(latest - 1)}
    assert client.post("/evaluation-counts", json=counts, headers=headers2).status_code == 202
    # A malformed header never fails the request it rides on, and reports nothing.
    bad = {**auth(tokens.sdk_server), "Flagstaff-Instance": "x", "Flagstaff-Version": "1"}
    assert client.get("/sdk/flags", headers=bad).status_code == 200
    prod = env_of(fleet(client), "production")
    assert prod["sdks"]["instances"] == 2 and prod["sdks"]["current"] == 1


def test_one_key_cannot_overwrite_another_keys_instance(client: TestClient, tokens: Tokens) -> None:
    latest = change(client)
    other = create_token(client, "sdk-server", environment="production", name="other")["secret"]
    report(client, tokens.sdk_server, {"instance": "shared-aaaaaaaa", "version": latest})
    report(client, other, {"instance": "shared-aaaaaaaa", "version": 1, "left": False})
    flush(client)
    items = client.get("/fleet/instances", headers=auth(ADMIN_SECRET)).json()["items"]
    # Two rows, one per key: the second key's report did not touch the first key's instance.
    by_key = {item["key"]["name"]: item["version"] for item in items}
    assert by_key == {"sdk-server-production": latest, "other": 1}
    # Nor can it make the first key's instance disappear.
    report(client, other, {"instance": "shared-aaaaaaaa", "left": True})
    flush(client)
    items = client.get("/fleet/instances", headers=auth(ADMIN_SECRET)).json()["items"]
    assert [item["key"]["name"] for item in items] == ["sdk-server-production"]


def test_instances_are_listed_by_status_and_paged(client: TestClient, tokens: Tokens) -> None:
    latest = change(client)
    report(client, tokens.sdk_server,
           *({"instance": f"inst-{i:04d}-aaaa", "version": latest if i % 2 else latest - 1}
             for i in range(5)))
    flush(client)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "behind", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/fleet/instances", params=params, headers=auth(ADMIN_SECRET)).json()
        seen += [item["instance"] for item in page["items"]]
        assert all(not item["current"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["inst-0000-aaaa", "inst-0002-aaaa", "inst-0004-aaaa"]
    item = client.get("/fleet/instances", params={"status": "current"},
                      headers=auth(ADMIN_SECRET)).json()["items"][0]
    assert item["last_heard_at"].endswith("Z") and item["key"]["id"]


def test_silent_instances_turn_stale(client: TestClient, tokens: Tokens) -> None:
    latest = change(client)
    store = client.app.state.store  # type: ignore[attr-defined]
    from flagstaff.fleet import Report
    from flagstaff.store.fleet import Heard

    listed = client.get("/tokens", headers=auth(ADMIN_SECRET)).json()
    sdk_id = next(t["id"] for t in listed["items"] if t["name"] == "sdk-server-production")
    ten_minutes_ago = int(time.time() * 1000) - 600_000
    store.record_fleet_reports(heard=[
        Heard(sdk_id, "production", Report("quiet-aaaaaaaa", version=latest - 1), ten_minutes_ago)
    ])
    report(client, tokens.sdk_server, {"instance": "loud-aaaaaaaa", "version": latest})
    prod = env_of(fleet(client), "production")
    assert prod["sdks"]["instances"] == 2 and prod["sdks"]["stale"] == 1
    assert prod["sdks"]["stale_behind"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "reports"),
        ({"reports": [{"instance": "short"}]}, "reports[0].instance"),
        ({"reports": [{"instance": "ok-aaaaaaaa", "version": -1}]}, "reports[0].version"),
        ({"reports": [{"instance": "ok-aaaaaaaa", "version": True}]}, "reports[0].version"),
        ({"reports": [{"instance": "ok-aaaaaaaa", "kind": "browser"}]}, "reports[0].kind"),
        ({"reports": [{"instance": "ok-aaaaaaaa", "secret": 1}]}, "reports[0].secret"),
        ({"reports": [{"instance": "ok-aaaaaaaa", "host": "h" * 300}]}, "reports[0].host"),
    ],
)
def test_bad_reports_are_refused_naming_the_field(
    client: TestClient, tokens: Tokens, body: dict[str, Any], field: str
) -> None:
    response = client.post("/fleet/reports", json=body, headers=auth(tokens.sdk_server))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["field"] == field
    assert fleet(client)["environments"] == []


def test_who_may_report_and_who_may_read(client: TestClient, tokens: Tokens) -> None:
    body = {"reports": [{"instance": "ok-aaaaaaaa", "version": 1}]}
    assert client.post("/fleet/reports", json=body).status_code == 401
    assert client.post("/fleet/reports", json=body, headers=auth(tokens.viewer)).status_code == 403
    assert client.post("/fleet/reports", json=body, headers=auth(tokens.revoked)).status_code == 401
    assert client.get("/fleet", headers=auth(tokens.sdk_server)).status_code == 403
    assert client.get("/fleet").status_code == 401
    assert client.get("/fleet", headers=auth(tokens.viewer)).status_code == 200
    assert client.get("/fleet/instances", headers=auth(tokens.viewer)).status_code == 200


def test_metrics_show_the_fleet(client: TestClient, tokens: Tokens) -> None:
    latest = change(client)
    report(client, tokens.sdk_server, {"instance": "m-aaaaaaaa", "version": latest},
           {"instance": "n-aaaaaaaa", "version": latest - 1})
    flush(client)
    text = client.get("/metrics").text
    assert f"flagstaff_fleet_latest_version {float(latest)}" in text
    assert ('flagstaff_fleet_instances{environment="production",kind="sdk",status="current"} 1.0'
            in text)
    assert ('flagstaff_fleet_instances{environment="production",kind="sdk",status="behind"} 1.0'
            in text)
    assert f'flagstaff_fleet_oldest_version{{environment="production",kind="sdk"}} {float(latest - 1)}' in text
    assert "flagstaff_fleet_reports_total 2.0" in text
