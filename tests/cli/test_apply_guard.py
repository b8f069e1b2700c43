"""``flagstaff apply`` of an older export during an incident, through a real server process.

The on-call engineer kills a flag in production and an experiment is running; applying a file
exported before must warn about both, refuse without ``--force`` and write nothing;
``--dry-run --exit-code`` tells CI the server drifted from the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from flagstaff.cli.errors import ExitCode
from tests.cli.conftest import Result, Server

FLAG = "guarded-checkout"


def test_apply_of_an_old_export_warns_and_needs_force(
    server: Server, cli: Callable[..., Result], tmp_path: Path
) -> None:
    base = ("--url", server.url, "--token", server.token)
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        assert admin.post("/flags", json={
            "key": FLAG, "type": "boolean", "kind": "experiment",
            "environments": {"production": {"enabled": True, "fallthrough": {"variant": "false"}},
                             "staging": {"enabled": True, "fallthrough": {"variant": "false"}}},
        }).status_code == 201
        assert admin.put(f"/experiments/{FLAG}", params={"environment": "staging"}, json={
            "variations": [{"variant": "false", "weight": 50}, {"variant": "true", "weight": 50}],
            "control": "false", "primary_metric": "checkout", "salt": "guard-1"}).status_code == 200
        assert admin.post(f"/experiments/{FLAG}/start", params={"environment": "staging"}).status_code == 200
    old = tmp_path / "flags.yaml"
    assert cli(*base, "export", "--out", str(old)).code == 0
    # The old export has the experiment with another salt (edited since), as a stale file would.
    old.write_text(old.read_text().replace("guard-1", "guard-0"))

    matches = cli(*base, "apply", "-f", str(old), "--dry-run", "--exit-code")
    assert matches.code == int(ExitCode.DRIFT)  # the salt differs already

    assert cli(*base, "flags", "kill", FLAG, "--env", "production", "--reason", "incident").code == 0
    preview = cli(*base, "apply", "-f", str(old), "--dry-run")
    assert preview.code == 0, preview.err
    assert "WARNING: turns production ON: it is off on the server (killed?)" in preview.out
    assert "WARNING: changes the running experiment in staging" in preview.out
    assert cli(*base, "apply", "-f", str(old), "--dry-run", "--exit-code").code == int(ExitCode.DRIFT)

    refused = cli(*base, "apply", "-f", str(old))
    assert refused.code == int(ExitCode.INVALID)
    assert f"WARNING: flag {FLAG} turns production ON" in refused.err and "--force" in refused.err
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        flag = admin.get(f"/flags/{FLAG}").json()
        assert flag["environments"]["production"]["enabled"] is False  # nothing written
        assert flag["environments"]["staging"]["experiment"]["salt"] == "guard-1"

    forced = cli(*base, "apply", "-f", str(old), "--force")
    assert forced.code == 0, forced.err
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as admin:
        assert admin.get(f"/flags/{FLAG}").json()["environments"]["production"]["enabled"] is True
    assert cli(*base, "apply", "-f", str(old), "--dry-run", "--exit-code").code == 0  # no drift now
