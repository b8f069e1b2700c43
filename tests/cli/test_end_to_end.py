"""The CLI against a real server process: every command, flags as code, error paths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flagstaff.flagfile import demo_path, loads
from tests.cli.conftest import Result, Server

pytestmark = pytest.mark.slow


def _json(result: Result) -> Any:
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_flag_lifecycle(admin: Any) -> None:
    created = _json(admin("-o", "json", "flags", "create", "life", "--tag", "ui", "--owner", "web"))
    assert created[0]["key"] == "life" and created[0]["tags"] == ["ui"]
    assert admin("flags", "create", "life").code == 1  # duplicate -> 409 -> invalid input

    listed = _json(admin("flags", "list", "--tag", "ui", "-o", "json"))
    assert [f["key"] for f in listed] == ["life"]
    table = admin("flags", "list", "--env", "production")
    assert table.code == 0 and "life" in table.out

    on = _json(admin("flags", "toggle", "life", "--on", "--env", "production", "-o", "json"))
    assert on["environments"]["production"]["enabled"] is True
    flipped = _json(admin("flags", "toggle", "life", "--env", "production", "-o", "json"))
    assert flipped["environments"]["production"]["enabled"] is False
    admin("flags", "toggle", "life", "--on", "--env", "production")
    killed = _json(admin("flags", "kill", "life", "--env", "production", "-o", "json"))
    assert killed["environments"]["production"]["enabled"] is False

    got = _json(admin("flags", "get", "life", "-o", "json"))
    assert got["owner"] == "web" and got["version"] == killed["version"]
    assert "owner: web" in admin("flags", "get", "life").out

    assert _json(admin("flags", "archive", "life", "-o", "json"))["state"] == "archived"
    assert [
        f["key"] for f in _json(admin("flags", "list", "--state", "archived", "-o", "json"))
    ] == ["life"]
    assert _json(admin("flags", "restore", "life", "-o", "json"))["state"] == "active"

    audit = admin("flags", "audit", "life")
    assert audit.code == 0
    for action in ("created", "toggled", "killed", "archived", "restored"):
        assert action in audit.out
    assert "environments.production.enabled: false -> true" in audit.out


def test_create_with_variants_and_eval(admin: Any) -> None:
    result = admin(
        "flags", "create", "limit", "--type", "number", "--variant", "low=4", "--variant", "high=15"
    )
    assert result.code == 0, result.err
    flag = _json(admin("flags", "get", "limit", "-o", "json"))
    assert flag["variants"] == {"low": 4, "high": 15} and flag["off_variant"] == "low"

    detail = _json(
        admin("eval", "limit", "--env", "production", "--context", '{"key": "u1"}', "-o", "json")
    )
    assert (detail["value"], detail["variant"], detail["reason"]) == (4, "low", "DISABLED")
    shown = admin("eval", "limit", "--env", "production", "--context", '{"key": "u1"}')
    assert "DISABLED" in shown.out and "low" in shown.out
    bad = admin("eval", "limit", "--context", "{nope")
    assert bad.code == 1 and "--context is not valid JSON" in bad.err


def test_segments_envs_and_tokens(admin: Any, server: Server, cli: Any) -> None:
    assert admin("segments", "create", "vips", "--include", "u1").code == 0
    assert _json(admin("segments", "get", "vips", "-o", "json"))["included"] == ["u1"]
    assert "vips" in admin("segments", "list").out
    assert admin("segments", "delete", "vips").code == 0
    assert admin("segments", "get", "vips").code == 1

    assert admin("envs", "create", "qa", "--name", "QA").code == 0
    assert "qa" in [e["key"] for e in _json(admin("envs", "list", "-o", "json"))]

    token = _json(admin("tokens", "create", "--name", "reader", "--role", "viewer", "-o", "json"))
    secret = token["secret"]
    assert secret.startswith("fsm_")
    assert cli("--url", server.url, "--token", secret, "flags", "list").code == 0
    forbidden = cli("--url", server.url, "--token", secret, "envs", "create", "nope")
    assert forbidden.code == 2 and "403" in forbidden.err
    assert token["id"] in admin("tokens", "list").out
    assert admin("tokens", "revoke", token["id"]).code == 0
    revoked = cli("--url", server.url, "--token", secret, "flags", "list")
    assert revoked.code == 2 and "the token was rejected" in revoked.err


def test_browser_access_commands(admin: Any) -> None:
    created = _json(admin("flags", "create", "page-banner", "--client-side", "-o", "json"))[0]
    assert created["client_side"] is True
    assert "hidden from client-side keys" in admin("flags", "client-side", "page-banner", "--off").out
    assert _json(admin("flags", "get", "page-banner", "-o", "json"))["client_side"] is False
    shown = admin("envs", "update", "staging")
    assert shown.code == 0 and "none (pages cannot call)" in shown.out
    access = _json(admin("envs", "update", "staging", "--allow-origin", "https://App.example.com/",
                         "--allow-origin", "http://localhost:5173", "--secure-mode", "-o", "json"))
    assert access == {"environment": "staging", "secure_mode": True,
                      "allowed_origins": ["https://app.example.com", "http://localhost:5173"]}
    fewer = _json(admin("envs", "update", "staging", "--disallow-origin", "http://localhost:5173",
                        "-o", "json"))
    assert fewer["allowed_origins"] == ["https://app.example.com"]
    bad = admin("envs", "update", "staging", "--allow-origin", "app.example.com")
    assert bad.code == 1 and "is not an origin" in bad.err
    secret = admin("envs", "secure-mode-secret", "staging").out.strip()
    assert secret.startswith("fsh_")
    rotated = admin("envs", "secure-mode-secret", "staging", "--rotate").out.strip()
    assert rotated.startswith("fsh_") and rotated != secret


def test_apply_is_idempotent_and_export_round_trips(admin: Any, tmp_path: Path) -> None:
    source = tmp_path / "flags.yaml"
    source.write_text(
        """
environments: [development, staging, production, perf]
segments:
  - {key: beta-tenants, name: Beta, included: [t1]}
flags:
  - key: as-code
    type: string
    defaultValue: a
    enabled: true
    rules:
      - id: beta
        conditions: [{operator: segment_match, value: beta-tenants}]
        value: b
"""
    )
    first = admin("apply", "-f", str(source))
    assert first.code == 0, first.err
    assert "create environment perf" in first.out and "create flag as-code" in first.out
    assert "no changes" in admin("apply", "-f", str(source)).out

    exported = admin("export")
    assert exported.code == 0
    exported_file = tmp_path / "export.yaml"
    exported_file.write_text(exported.out)
    assert {f["key"] for f in loads(exported.out).flags} >= {
        "as-code",
        *(f["key"] for f in loads(demo_path().read_text()).flags),
    }
    again = admin("apply", "-f", str(exported_file))
    assert "no changes" in again.out, again.out

    edited = tmp_path / "edited.yaml"
    edited.write_text(source.read_text().replace("        value: b\n", "        value: c\n"))
    plan = _json(admin("apply", "-f", str(edited), "--dry-run", "-o", "json"))
    [change] = plan["changes"]
    assert change["key"] == "as-code" and change["op"] == "update"
    assert any(
        c["path"] == "environments.production.rules[0].serve.variant" for c in change["changes"]
    )
    assert "no changes" not in admin("apply", "-f", str(edited), "--dry-run").out
    assert _json(admin("flags", "get", "as-code", "-o", "json"))["variants"] == {"a": "a", "b": "b"}
    assert admin("apply", "-f", str(edited)).code == 0
    assert "no changes" in admin("apply", "-f", str(edited)).out

    only_prod = admin("export", "--env", "production")
    prod_file = tmp_path / "prod.yaml"
    prod_file.write_text(only_prod.out)
    assert loads(only_prod.out).environments == ["production"]
    assert "no changes" in admin("apply", "-f", str(prod_file), "--env", "production").out


def test_apply_restores_an_archived_flag(admin: Any, tmp_path: Path) -> None:
    source = tmp_path / "f.yaml"
    source.write_text("flags: [{key: phoenix, type: boolean}]\n")
    assert admin("apply", "-f", str(source)).code == 0
    assert admin("flags", "archive", "phoenix").code == 0
    result = admin("apply", "-f", str(source))
    assert "restore flag phoenix" in result.out
    assert _json(admin("flags", "get", "phoenix", "-o", "json"))["state"] == "active"
    assert "no changes" in admin("apply", "-f", str(source)).out


def test_invalid_file_names_the_line_and_writes_nothing(admin: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "flags:\n  - key: half-written\n    type: boolean\n  - key: broken\n    type: colour\n"
    )
    result = admin("apply", "-f", str(bad))
    assert result.code == 1
    assert f"{bad}:5" in result.err
    assert admin("flags", "get", "half-written").code == 1


def test_scan_against_server_flags(admin: Any, tmp_path: Path) -> None:
    admin("flags", "create", "scanned-flag")
    (tmp_path / "app.py").write_text(
        'if client.bool("scanned-flag", ctx):\n    client.bool("ghost-flag")\n'
    )
    report = _json(admin("scan", str(tmp_path), "-o", "json"))
    assert {r["key"] for r in report["references"]} == {"scanned-flag", "ghost-flag"}
    assert [r["key"] for r in report["unknown"]] == ["ghost-flag"]
    assert "scanned-flag" not in report["unused"] and "model-provider" in report["unused"]


def test_unreachable_server_and_bad_token(cli: Any, server: Server, unused_port: int) -> None:
    down = cli("--url", f"http://127.0.0.1:{unused_port}", "--token", "x", "flags", "list")
    assert down.code == 2
    assert f"cannot reach server at http://127.0.0.1:{unused_port}" in down.err
    bad = cli("--url", server.url, "--token", "fsm_wrong", "flags", "list")
    assert bad.code == 2 and "the token was rejected" in bad.err
    missing = cli("--url", server.url, "flags", "list")
    assert missing.code == 1 and "wants a token: pass --token" in missing.err


def test_stale_write_is_a_clear_412(admin: Any, server: Server) -> None:
    import httpx

    from flagstaff.cli.client import ApiClient
    from flagstaff.cli.config import Connection
    from flagstaff.cli.errors import CliError, ExitCode

    admin("flags", "create", "raced")
    with ApiClient(Connection(server.url, server.token)) as client:
        version = client.get("/flags/raced")["version"]
        client.send(
            "PATCH", "/flags/raced/environments/production", {"enabled": True}, if_match=version
        )
        with pytest.raises(CliError) as info:
            client.send(
                "PATCH",
                "/flags/raced/environments/production",
                {"enabled": False},
                if_match=version,
            )
    assert info.value.code == ExitCode.INVALID
    assert "the flag changed since you read it" in info.value.message
    assert httpx.get(f"{server.url}/health").status_code == 200


def test_env_and_profile_configuration(
    cli: Any, server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'default_profile = "ci"\n[profiles.ci]\nurl = "{server.url}"\ntoken = "{server.token}"\n[profiles.bad]\nurl = "{server.url}"\ntoken = "fsm_nope"\n'
    )
    monkeypatch.setenv("FLAGSTAFF_CONFIG", str(config))
    assert cli("envs", "list").code == 0
    assert cli("--profile", "bad", "envs", "list").code == 2
    monkeypatch.setenv("FLAGSTAFF_TOKEN", server.token)
    assert cli("--profile", "bad", "envs", "list").code == 0  # the environment beats the profile
    assert cli("--profile", "missing", "envs", "list").code == 1


def test_serve_starts_a_server(tmp_path: Path, unused_port: int) -> None:
    import os
    import subprocess
    import sys

    from tests.cli.conftest import TOKEN
    from tests.serverprocess import wait_ready

    env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": TOKEN, "FLAGSTAFF_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-c", "from flagstaff.cli import main; main()", "serve",
               "--port", str(unused_port), "--database-url", f"sqlite:///{tmp_path / 's.db'}"]  # fmt: skip
    with (tmp_path / "log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(f"http://127.0.0.1:{unused_port}", process)
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_apply_creates_referenced_objects_first(admin: Any, tmp_path: Path) -> None:
    source = tmp_path / "deps.yaml"
    source.write_text(
        """
segments:
  - {key: outer-seg, rules: [{conditions: [{operator: segment_match, values: [inner-seg]}]}]}
  - {key: inner-seg, included: [u1]}
flags:
  - key: child-flag
    type: boolean
    environments:
      production: {enabled: true, prerequisites: [{flag: parent-flag, variant: "true"}]}
  - {key: parent-flag, type: boolean}
"""
    )
    result = admin("apply", "-f", str(source))
    assert result.code == 0, result.err
    assert result.out.index("create segment inner-seg") < result.out.index(
        "create segment outer-seg"
    )
    assert result.out.index("create flag parent-flag") < result.out.index("create flag child-flag")
