"""First start: the admin token printed once, the bootstrap env var, the demo flags."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from tests.server.conftest import auth


def test_admin_token_is_printed_once_and_works(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(database_url=database_url, demo=False)
    with TestClient(create_app(settings)):
        pass
    first = capsys.readouterr().out
    match = re.search(r"admin token \(shown once, store it now\): (fsm_\S+)", first)
    assert match, first
    with TestClient(create_app(settings)) as client:
        assert client.get("/tokens", headers=auth(match.group(1))).status_code == 200
    assert "fsm_" not in capsys.readouterr().out


def test_bootstrap_token_env_var_becomes_the_admin_token(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLAGSTAFF_BOOTSTRAP_TOKEN", "fsm_automation-secret-value-000000000000")
    monkeypatch.setenv("FLAGSTAFF_DATABASE_URL", database_url)
    monkeypatch.setenv("FLAGSTAFF_DEMO", "false")
    with TestClient(create_app(Settings())) as client:
        tokens = client.get("/tokens", headers=auth("fsm_automation-secret-value-000000000000"))
        assert tokens.status_code == 200
        assert [t["role"] for t in tokens.json()["items"]] == ["admin"]
    out = capsys.readouterr().out
    assert "FLAGSTAFF_BOOTSTRAP_TOKEN" in out and "automation-secret" not in out


def test_demo_flags_load_on_first_start_only(database_url: str) -> None:
    settings = Settings(database_url=database_url, bootstrap_token="fsm_demo-admin-0000000000000000000")
    h = auth("fsm_demo-admin-0000000000000000000")
    demo = {"self-evolution-enabled", "parallel-agents-limit", "new-orchestrator-v2", "model-provider"}
    with TestClient(create_app(settings)) as client:
        keys = {f["key"] for f in client.get("/flags", headers=h).json()["items"]}
        assert keys == demo
        client.delete("/flags/model-provider", headers=h)
        enterprise = client.post(
            "/evaluate",
            json={"flag": "parallel-agents-limit", "environment": "production",
                  "context": {"targetingKey": "t", "tenant": {"type": "enterprise"}}},
            headers=h,
        ).json()
        assert enterprise["value"] == 15
    with TestClient(create_app(settings)) as client:
        flags = client.get("/flags", headers=h).json()["items"]
        assert {f["key"] for f in flags} == demo
        assert [f["key"] for f in flags if f["state"] == "archived"] == ["model-provider"]
        assert len(client.get("/audit", params={"action": "created", "kind": "flag"}, headers=h).json()["items"]) == 4
