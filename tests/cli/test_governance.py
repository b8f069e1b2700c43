"""Governed change from the terminal, against a real server process: a policy, a change
request from proposal to applied write (author and reviewer are different tokens), schedules
and a ramp, a webhook whose deliveries are listed and redelivered, a trigger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Result
from tests.server.governance.receiver import Receiver, wait_for
from tests.serverprocess import ServerProcess, server_process

pytestmark = pytest.mark.slow
ADMIN = "fsm_cli_governance_admin_token_0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("governance_cli")
    with server_process(
        f"sqlite:///{directory / 'flagstaff.db'}", directory / "server.log", admin_token=ADMIN,
        FLAGSTAFF_LOG_LEVEL="WARNING", FLAGSTAFF_WEBHOOK_ALLOW_LOOPBACK="true",
        FLAGSTAFF_WEBHOOK_POLL_SECONDS="0.1", FLAGSTAFF_SCHEDULER_POLL_SECONDS="0.2",
    ) as process:
        yield process


def token(server: ServerProcess, name: str, role: str) -> str:
    answer = httpx.post(f"{server.url}/tokens", headers={"Authorization": f"Bearer {ADMIN}"},
                        json={"name": name, "kind": "management", "role": role})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["secret"])


@pytest.fixture(scope="module")
def people(server: ServerProcess) -> dict[str, str]:
    return {"alice": token(server, "alice", "editor"), "bob": token(server, "bob", "editor"),
            "admin": ADMIN}


@pytest.fixture
def as_(server: ServerProcess, people: dict[str, str], cli: Any) -> Any:
    def invoke(who: str, *args: str) -> Result:
        return cli("--url", server.url, "--token", people[who], *args)  # type: ignore[no-any-return]

    return invoke


def data(result: Result) -> Any:
    assert result.code == 0, result.err + result.out
    return json.loads(result.out)


def test_a_change_request_from_proposal_to_applied_write(as_: Any) -> None:
    assert as_("alice", "flags", "create", "checkout").code == 0
    policy = data(as_("admin", "-o", "json", "policy", "set", "production", "--approvals", "1"))
    assert policy["required_approvals"] == 1 and policy["author_may_approve"] is False
    assert as_("alice", "policy", "set", "production", "--approvals", "0").code == 2  # admin only
    shown = as_("alice", "policy", "show")
    assert "production" in shown.out and "one action" in shown.out

    refused = as_("alice", "flags", "toggle", "checkout", "--on", "--env", "production")
    assert refused.code == 1
    assert "requires review" in refused.err and "review_required" in refused.err

    proposed = data(as_("alice", "-o", "json", "changes", "propose", "checkout", "-e",
                        "production", "--on", "-m", "launch day"))
    number = str(proposed["id"])
    table = as_("bob", "changes", "list", "--status", "open")
    assert table.code == 0 and "launch day" in table.out
    detail = as_("bob", "changes", "show", number)
    assert "environments.production.enabled: false -> true" in detail.out
    own = as_("alice", "changes", "approve", number)
    assert own.code == 2 and "author" in own.err
    early = as_("alice", "changes", "apply", number)
    assert early.code == 1 and "not_approved" in early.err
    assert as_("bob", "changes", "reject", number).code != 0  # a reason is required
    approved = as_("bob", "changes", "approve", number, "-m", "go")
    assert approved.code == 0 and "approved (1/1 approvals)" in approved.out
    applied = as_("alice", "changes", "apply", number)
    assert applied.code == 0 and "now at version 2" in applied.out
    flag = data(as_("bob", "-o", "json", "flags", "get", "checkout"))
    assert flag["environments"]["production"]["enabled"] is True
    audit = as_("bob", "flags", "audit", "checkout")
    assert f"via change request #{number}" in audit.out

    # The incident kill is one action, and an approved request whose base moved conflicts.
    second = data(as_("alice", "-o", "json", "changes", "propose", "checkout", "-e",
                      "production", "--rollout", "true=50,false=50"))
    as_("bob", "changes", "approve", str(second["id"]))
    assert as_("alice", "flags", "kill", "checkout", "--env", "production").code == 0
    conflict = as_("alice", "changes", "apply", str(second["id"]))
    assert conflict.code == 1 and "moved from version 2" in conflict.err
    assert data(as_("bob", "-o", "json", "changes", "show", str(second["id"])))["status"] == "conflict"
    as_("admin", "policy", "set", "production", "--approvals", "0")


def test_schedules_a_ramp_and_their_outcome(as_: Any) -> None:
    assert as_("alice", "flags", "create", "search").code == 0
    made = data(as_("alice", "-o", "json", "schedules", "create", "search", "-e", "staging",
                    "--at", "+1s", "--on", "-m", "turn on"))
    assert made["status"] == "pending" and made["action"] == "enable"
    ramp = data(as_("alice", "-o", "json", "schedules", "ramp", "search", "-e", "staging",
                    "--steps", "10,50", "--start", "+2s", "--every", "1d"))
    assert [s["params"]["variations"][0]["weight"] for s in ramp] == [10, 50]
    assert as_("alice", "schedules", "edit", str(ramp[1]["id"]), "--at", "+2d").code == 0
    assert as_("alice", "schedules", "cancel", str(ramp[1]["id"])).code == 0
    bad = as_("alice", "schedules", "create", "search", "-e", "staging", "--at", "soon", "--on")
    assert bad.code == 1 and "--at must be" in bad.err

    def done() -> Any:
        items = data(as_("bob", "-o", "json", "schedules", "list", "--flag", "search"))
        return items if [s["status"] for s in items] == ["applied", "applied", "cancelled"] else None

    applied = wait_for(done, what="both schedules applied")
    assert applied[0]["late_ms"] < 5000
    listing = as_("bob", "schedules", "list", "--flag", "search")
    assert listing.code == 0 and "applied" in listing.out and "cancelled" in listing.out
    assert applied[1]["params"]["variations"] == [{"variant": "true", "weight": 10},
                                                  {"variant": "false", "weight": 90}]
    flag = data(as_("bob", "-o", "json", "flags", "get", "search"))["environments"]["staging"]
    assert flag["enabled"] is True and flag["fallthrough"]["rollout"]["variations"][0]["weight"] == 10


def test_webhooks_deliveries_redelivery_and_triggers(as_: Any) -> None:
    receiver = Receiver().start()
    try:
        made = data(as_("admin", "-o", "json", "webhooks", "create", receiver.url + "/in",
                        "--event", "flag.*", "--flag", "hooked"))
        assert made["secret"].startswith("whsec_")
        assert as_("alice", "webhooks", "list").code == 2  # admins only
        assert as_("alice", "flags", "create", "hooked").code == 0
        wait_for(lambda: receiver.received, what="the delivery")
        log = data(as_("admin", "-o", "json", "webhooks", "deliveries", str(made["id"])))
        assert [(d["event"], d["status"], d["response_code"]) for d in log] == [
            ("flag.created", "delivered", 200)]
        assert as_("admin", "webhooks", "redeliver", str(made["id"]), str(log[0]["id"])).code == 0
        wait_for(lambda: len(receiver.received) == 2, what="the redelivery")
        assert receiver.received[1].body == receiver.received[0].body.replace(
            f'"delivery":{log[0]["id"]}'.encode(),
            f'"delivery":{log[0]["id"] + 1}'.encode())
        assert as_("admin", "webhooks", "ping", str(made["id"])).code == 0
        refused = as_("admin", "webhooks", "create", "http://169.254.169.254/")
        assert refused.code == 1 and "link-local" in refused.err

        trigger = data(as_("alice", "-o", "json", "triggers", "create", "hooked", "-e",
                           "staging", "--name", "alert"))
        as_("alice", "flags", "toggle", "hooked", "--on", "--env", "staging")
        assert httpx.post(trigger["url"]).status_code == 200
        flag = data(as_("bob", "-o", "json", "flags", "get", "hooked"))
        assert flag["environments"]["staging"]["enabled"] is False
        listed = as_("bob", "triggers", "list", "--flag", "hooked")
        assert "alert" in listed.out and trigger["url"] not in listed.out
        assert as_("alice", "triggers", "revoke", trigger["id"]).code == 0
        assert httpx.post(trigger["url"]).status_code == 404
    finally:
        receiver.stop()
