"""Approval policies and webhook subscriptions as code, against a real server process: export
writes them (never a secret), apply applies them idempotently (a second apply writes nothing,
--dry-run shows the change), a subscription's secret comes from the environment variable the
file names and signs its deliveries, and a file without them leaves the server's alone."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstaff.flagfile import loads
from flagstaff.server.governance import signing
from tests.cli.conftest import Result
from tests.server.governance.receiver import Receiver, wait_for
from tests.serverprocess import ServerProcess, server_process

pytestmark = pytest.mark.slow
ADMIN = "fsm_cli_ascode_governance_admin_0123456789"
SECRET = "whsec_from_the_environment_0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("ascode_governance")
    with server_process(
        f"sqlite:///{directory / 'flagstaff.db'}", directory / "server.log", admin_token=ADMIN,
        FLAGSTAFF_LOG_LEVEL="WARNING", FLAGSTAFF_WEBHOOK_ALLOW_LOOPBACK="true",
        FLAGSTAFF_WEBHOOK_POLL_SECONDS="0.1",
    ) as process:
        yield process


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {ADMIN}"}) as client:
        yield client


@pytest.fixture
def fs(server: ServerProcess, cli: Any) -> Any:
    def invoke(*args: str, token: str = ADMIN) -> Result:
        return cli("--url", server.url, "--token", token, *args)  # type: ignore[no-any-return]

    return invoke


def writes(api: httpx.Client) -> int:
    return int(api.get("/audit", params={"limit": 1, "order": "newest"}).json()["items"][0]["id"])


def data(result: Result) -> Any:
    assert result.code == 0, result.err + result.out
    return json.loads(result.out)


def test_policies_and_webhooks_apply_once_and_export_back(
    fs: Any, api: httpx.Client, receiver: Receiver, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook_url = f"{receiver.url}/audit-sink"
    file = tmp_path / "flags.yaml"
    file.write_text(
        "policies:\n"
        "  production: {required_approvals: 1, approver_role: admin}\n"
        "flags:\n"
        "  - key: checkout\n"
        "    type: boolean\n"
        "    environments: {production: {enabled: false}}\n"
        "webhooks:\n"
        f"  - url: {hook_url}\n"
        "    events: ['flag.*']\n"
        "    flags: [checkout]\n"
        "    secret_env: AUDIT_SINK_SECRET\n"
    )
    # The secret's variable must be set before anything is written.
    monkeypatch.delenv("AUDIT_SINK_SECRET", raising=False)
    before = writes(api)
    missing = fs("apply", "-f", str(file))
    assert missing.code == 1 and "AUDIT_SINK_SECRET" in missing.err and "Nothing applied" in missing.err
    assert writes(api) == before
    monkeypatch.setenv("AUDIT_SINK_SECRET", SECRET)

    preview = data(fs("-o", "json", "apply", "-f", str(file), "--dry-run"))
    assert [(c["kind"], c["key"], c["op"]) for c in preview["changes"]] == [
        ("webhook", hook_url, "create"), ("flag", "checkout", "create"),
        ("policy", "production", "update"),  # turned on after the flags it protects
    ]
    policy_change = {c["path"]: (c["old"], c["new"]) for c in preview["changes"][2]["changes"]}
    assert policy_change == {"required_approvals": (0, 1), "approver_role": ("editor", "admin")}
    assert not any(SECRET in line for line in json.dumps(preview).splitlines())
    assert writes(api) == before

    applied = fs("apply", "-f", str(file))
    assert applied.code == 0, applied.err
    assert "applied 3 change(s)" in applied.out and SECRET not in applied.out
    policy = api.get("/environments/production/policy").json()
    assert (policy["required_approvals"], policy["approver_role"]) == (1, "admin")
    (hook,) = [h for h in api.get("/webhooks").json()["items"] if h["url"] == hook_url]
    assert "secret" not in hook

    # Idempotent: the second apply plans nothing and writes nothing.
    after = writes(api)
    again = fs("apply", "-f", str(file))
    assert again.code == 0 and "no changes" in again.out
    assert writes(api) == after

    # The secret from the environment signs the deliveries (the flag's creation was one).
    got = wait_for(lambda: receiver.at("/audit-sink"), what="a delivery to the new subscription")
    assert got[0].json["event"] == "flag.created" and got[0].json["flag"] == "checkout"
    assert signing.verify(SECRET, got[0].headers[signing.TIMESTAMP], got[0].body,
                          got[0].headers[signing.SIGNATURE], now=time.time())

    # Export writes them back without the secret, and that file plans nothing either.
    exported = tmp_path / "exported.yaml"
    assert fs("export", "--out", str(exported)).code == 0
    text = exported.read_text()
    assert SECRET not in text and "secret" not in text
    back = loads(text)
    assert back.policies == {"production": {"required_approvals": 1, "author_may_approve": False,
                                            "approver_role": "admin", "kill_requires_review": False}}
    assert back.webhooks is not None
    assert [(w["url"], w["events"], w["flags"]) for w in back.webhooks] == [
        (hook_url, ["flag.*"], ["checkout"])]
    assert data(fs("-o", "json", "apply", "-f", str(exported), "--dry-run"))["changes"] == []

    # Loosening comes first: a file that turns review off and changes production applies in
    # one run (the flag write would be refused under the policy).
    file.write_text(file.read_text()
                    .replace("required_approvals: 1, approver_role: admin", "required_approvals: 0")
                    .replace("enabled: false", "enabled: false, fallthrough: {variant: 'true'}")
                    .replace("events: ['flag.*']", "events: ['flag.*']\n    active: false"))
    loosened = data(fs("-o", "json", "apply", "-f", str(file)))
    assert [(c["kind"], c["op"]) for c in loosened["changes"]] == [
        ("webhook", "update"), ("policy", "update"), ("flag", "update")]
    assert api.get("/environments/production/policy").json()["required_approvals"] == 0
    assert api.get(f"/webhooks/{hook['id']}").json()["active"] is False
    served = api.get("/flags/checkout").json()["environments"]["production"]["fallthrough"]
    assert served == {"variant": "true"}
    assert "no changes" in fs("apply", "-f", str(file)).out


def test_a_file_without_them_leaves_them_and_editors_export_without_webhooks(
    fs: Any, api: httpx.Client, server: ServerProcess, tmp_path: Path,
) -> None:
    api.put("/environments/staging/policy", json={"required_approvals": 2}).raise_for_status()
    made = api.post("/webhooks", json={"url": "http://127.0.0.1:9/elsewhere"})
    made.raise_for_status()
    file = tmp_path / "flags.yaml"
    file.write_text("flags:\n  - key: plain\n    type: boolean\n")
    before = writes(api)
    result = data(fs("-o", "json", "apply", "-f", str(file)))
    assert [c["kind"] for c in result["changes"]] == ["flag"]
    assert "unmanaged_webhooks" not in result
    assert writes(api) == before + 1  # the flag, nothing else
    assert api.get("/environments/staging/policy").json()["required_approvals"] == 2

    # A file that manages webhooks reports the ones it does not name and leaves them.
    file.write_text("flags: []\nwebhooks: []\n")
    listed = data(fs("-o", "json", "apply", "-f", str(file)))
    assert "http://127.0.0.1:9/elsewhere" in listed["unmanaged_webhooks"]
    assert api.get(f"/webhooks/{made.json()['id']}").status_code == 200

    editor = api.post("/tokens", json={"name": "ed", "kind": "management", "role": "editor"})
    exported = fs("export", token=editor.json()["secret"])
    assert exported.code == 0, exported.err
    assert "only an admin token may read them" in exported.err
    assert "webhooks:" not in exported.out and "staging:\n    required_approvals: 2" in exported.out
    # --env exports that environment's policy only, and no subscriptions.
    staging = fs("export", "--env", "staging")
    assert "webhooks:" not in staging.out and "required_approvals: 2" in staging.out
    production = fs("export", "--env", "production")
    assert "policies:" not in production.out


def test_secrets_are_refused_in_files_naming_the_line(fs: Any, tmp_path: Path) -> None:
    file = tmp_path / "flags.yaml"
    file.write_text("flags: []\nwebhooks:\n  - url: https://hooks.example.com/x\n"
                    "    secret: whsec_do_not_commit_me_0123456789\n")
    result = fs("validate", str(file))
    assert result.code == 1
    assert "flags.yaml:4" in result.err and "secret_env" in result.err
