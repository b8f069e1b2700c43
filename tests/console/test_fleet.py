"""The console's fleet lines: the reach of every change, and of a flag's latest change live."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from flagstaff.store import Store
from tests.builders import flag
from tests.console.conftest import ADMIN_SECRET, Secrets, TestClient, sign_in


@pytest.fixture
def app(database_url: str) -> FastAPI:
    return create_app(Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                               fleet_flush_interval_seconds=0.05))


def report(client: TestClient, key: str, *reports: dict[str, Any]) -> None:
    answer = client.post("/fleet/reports", json={"reports": list(reports)},
                         headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 202, answer.text
    client.app.state.fleet.collector.flush()  # type: ignore[attr-defined]
    client.app.state.fleet.view._cached = None  # type: ignore[attr-defined]


def test_history_audit_and_flag_page_show_how_far_each_change_reached(
    client: TestClient, store: Store, secrets: Secrets
) -> None:
    store.create_flag(definition=flag("checkout").env("production", lambda e: e.on()).build(),
                      actor="test")
    killed = store.set_flag_enabled(key="checkout", environment="production", enabled=False,
                                    actor="test", action="killed")
    kill_event = store.latest_event_of(target_kind="flag", target_key="checkout")
    assert kill_event is not None and killed.version == 2
    report(client, secrets.sdk,
           *({"instance": f"web-{i:03d}-aaaa", "version": kill_event} for i in range(3)),
           {"instance": "web-old-aaaaaaa", "version": kill_event - 1},
           {"instance": "edge-aaaaaaaa", "kind": "relay", "version": kill_event})
    sign_in(client, secrets.viewer)

    history = client.get("/ui/flags/checkout/history").text
    # The kill (production) reached 3 of the 4 SDK instances; the creation reached all of them.
    assert "75 % of 4 SDK instances have it; 1 of 1 relay" in history
    assert "100 % of 4 SDK instances have it; 1 of 1 relay" in history
    assert "75 % of 4 SDK instances" in client.get("/ui/audit").text

    page = client.get("/ui/flags/checkout").text
    assert f"Latest change (event {kill_event})" in page
    assert 'data-fleet-env="production" data-complete="false"' in page
    fragment = client.get("/ui/fragments/flag-fleet/checkout")
    assert fragment.status_code == 200 and 'data-complete="false"' in fragment.text
    # The last instance applies the kill: the section turns complete.
    report(client, secrets.sdk, {"instance": "web-old-aaaaaaa", "version": kill_event})
    fragment = client.get("/ui/fragments/flag-fleet/checkout").text
    assert "100 % of 4 SDK instances have it; 1 of 1 relay" in fragment
    assert '<div id="flag-fleet" data-complete="true"' in fragment
    # Environments nobody reports from say so rather than showing a percentage.
    assert "No SDK instance or relay has reported yet" in fragment
    assert client.get("/ui/fragments/flag-fleet/nope").status_code == 404
