"""Incident drill through a real server process: kill a flag in production from the CLI, see a
running SDK serve the off value, then have an older export's ``apply`` warn and refuse to revert
the kill.  The time from the kill to the SDK's off value is printed (not asserted: the bound
below is only how long the drill waits; run with -s to see it)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from flagstaff.cli.errors import ExitCode
from flagstaff.sdk import Client
from tests.cli.conftest import Result, Server

FLAG = "drill-payments"


def test_kill_reaches_a_running_sdk_and_an_old_export_cannot_silently_revert_it(
    server: Server, cli: Callable[..., Result], tmp_path: Path
) -> None:
    base = ("--url", server.url, "--token", server.token)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        assert admin.post("/flags", json={
            "key": FLAG, "type": "boolean",
            "environments": {"production": {"enabled": True, "fallthrough": {"variant": "true"}}},
        }).status_code == 201
        sdk_key = admin.post("/tokens", json={"name": "drill", "kind": "sdk-server",
                                              "environment": "production"}).json()["secret"]
    exported = tmp_path / "before-incident.yaml"
    assert cli(*base, "export", "--out", str(exported)).code == 0

    client = Client(server.url, sdk_key=sdk_key)
    try:
        assert client.wait_until_ready(30)
        assert client.bool(FLAG, {"key": "u1"}, False) is True
        killed = cli(*base, "flags", "kill", FLAG, "--env", "production", "--reason", "drill")
        assert killed.code == 0, killed.err
        started = time.monotonic()
        while client.bool(FLAG, {"key": "u1"}, True) is not False:
            assert time.monotonic() - started < 60, "the SDK never served the off value"
            time.sleep(0.005)
        # Written past pytest's capture (the cli fixture reads captured output).
        sys.__stderr__.write(
            f"\nkill -> SDK serves off: {(time.monotonic() - started) * 1000:.0f} ms after the CLI returned\n"
        )
    finally:
        client.close()

    preview = cli(*base, "apply", "-f", str(exported), "--dry-run", "--exit-code")
    assert preview.code == int(ExitCode.DRIFT)
    assert "WARNING: turns production ON: it is off on the server (killed?)" in preview.out
    refused = cli(*base, "apply", "-f", str(exported))
    assert refused.code == int(ExitCode.INVALID) and "--force" in refused.err
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        assert admin.get(f"/flags/{FLAG}").json()["environments"]["production"]["enabled"] is False
