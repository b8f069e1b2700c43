"""The CLI's everyday moments against a real server process: messages that say what to do,
help that reads well, an on-call kill with its reason, the default rule, the audit log,
experiments set up from the command line, a hung or token-less server."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Result, Server
from tests.serverprocess import server_process

pytestmark = pytest.mark.slow


def _json(result: Result) -> Any:
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_messages_say_what_to_do(admin: Any) -> None:
    # the demo flag model-provider has no experiment anywhere
    missing = admin("experiments", "results", "model-provider")
    assert missing.code == 1
    assert "has no experiment yet" in missing.err
    assert "flagstaff experiments create model-provider --env" in missing.err
    assert "has an experiment in any environment" not in missing.err

    no_env = admin("eval", "model-provider", "--context", '{"key": "u1"}')
    assert no_env.code == 1
    assert "(add --env)" in no_env.err and "(field environment)" not in no_env.err


def test_a_second_kill_says_already_killed_with_who_and_why(admin: Any) -> None:
    admin("flags", "create", "on-call")
    admin("flags", "toggle", "on-call", "--on", "--env", "production")
    first = admin("flags", "kill", "on-call", "--env", "production", "--reason", "errors spiking")
    version = _json(admin("flags", "get", "on-call", "-o", "json"))["version"]
    assert first.code == 0 and "killed flag on-call in production" in first.out
    assert f"(version {version})" in first.out

    second = admin("flags", "kill", "on-call", "--env", "production")
    assert second.code == 0
    assert "already killed in production by" in second.out
    assert "(errors spiking)" in second.out and f"nothing changed (version {version})" in second.out

    # the reason is in the audit record, for the flag's history and the global log
    history = admin("flags", "audit", "on-call")
    assert "killed (production)  reason: errors spiking" in history.out
    records = _json(admin("audit", "--key", "on-call", "-o", "json"))
    killed = [r for r in records if r["action"] == "killed"]
    assert len(killed) == 1 and killed[0]["context"] == {"reason": "errors spiking"}

    # off by a toggle (not a kill): "already off", never "already killed"
    admin("flags", "create", "quiet")
    off = admin("flags", "kill", "quiet", "--env", "staging")
    assert off.code == 0 and "already off in staging; nothing changed" in off.out


def test_toggle_on_hints_at_the_default_rule_and_serve_sets_it(admin: Any, server: Server) -> None:
    admin("flags", "create", "fresh")
    on = admin("flags", "toggle", "fresh", "--on", "--env", "staging")
    assert on.code == 0 and "is now on in staging" in on.out
    assert "still serves its off variant 'false'" in on.err
    assert "flagstaff flags serve fresh --env staging" in on.err

    everyone = admin("flags", "serve", "fresh", "--env", "staging", "--percent", "100")
    assert everyone.code == 0, everyone.err
    assert "now serves a rollout of true 100%, false 0% by default in staging" in everyone.out
    assert admin("flags", "toggle", "fresh", "--on", "--env", "staging").err == ""

    ten = _json(admin("flags", "serve", "fresh", "--env", "production", "--percent", "10",
                      "--bucket-by", "tenant.id", "-o", "json"))  # fmt: skip
    assert ten["environments"]["production"]["fallthrough"] == {"rollout": {
        "variations": [{"variant": "true", "weight": 10}, {"variant": "false", "weight": 90}],
        "bucket_by": "tenant.id"}}  # fmt: skip
    # ramping keeps the bucketing; switching to one variant drops the rollout
    ramp = _json(admin("flags", "serve", "fresh", "--env", "production", "--percent", "50", "-o", "json"))
    assert ramp["environments"]["production"]["fallthrough"]["rollout"]["bucket_by"] == "tenant.id"
    one = _json(admin("flags", "serve", "fresh", "--env", "production", "--variant", "true", "-o", "json"))
    assert one["environments"]["production"]["fallthrough"] == {"variant": "true"}

    # what the server now serves, through the evaluation API
    admin("flags", "toggle", "fresh", "--on", "--env", "production")
    served = _json(admin("eval", "fresh", "--env", "production", "--context", '{"key": "u"}',
                         "-o", "json"))  # fmt: skip
    assert served["value"] is True and served["reason"] == "FALLTHROUGH"

    bad = admin("flags", "serve", "fresh", "--env", "production", "--rollout", "true=60",
                "--rollout", "false=60")  # fmt: skip
    assert bad.code == 1 and "100" in bad.err
    both = admin("flags", "serve", "fresh", "--env", "production", "--variant", "true",
                 "--percent", "5")  # fmt: skip
    assert both.code == 1 and "exactly one of --variant, --percent or --rollout" in both.err


def test_flags_list_search_and_stale_help(admin: Any) -> None:
    admin("flags", "create", "search-me-please", "--description", "payment retries")
    admin("flags", "create", "unrelated")
    found = _json(admin("flags", "list", "--search", "payment", "-o", "json"))
    assert [f["key"] for f in found] == ["search-me-please"]
    text = admin("flags", "list", "--search", "search-me")
    assert "1 flag(s) matching 'search-me'" in text.out
    assert "stale" in admin("flags", "list", "--help").out
    stale = admin("flags", "list", "--state", "stale", "-o", "json")
    assert stale.code == 0 and isinstance(json.loads(stale.out), list)
    newest = _json(admin("flags", "list", "--sort", "-updated", "-o", "json"))
    assert [f["key"] for f in newest][:2] == ["unrelated", "search-me-please"]
    bad = admin("flags", "list", "--sort", "colour")
    assert bad.code != 0 and "sort 'colour' is not known" in bad.err


def test_help_shows_switches_without_a_type(admin: Any) -> None:
    for command in (("flags", "create"), ("flags", "toggle"), ("experiments", "create"), ()):
        shown = admin(*command, "--help")
        assert shown.code == 0
        assert "<bool>" not in shown.out, command
        assert "--help" in shown.out


def test_tables_never_break_words_at_80_columns(
    admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    admin("flags", "create", "everywhere-on", "--tag", "checkout", "--tag", "payments")
    for env in ("development", "staging", "production"):
        admin("flags", "toggle", "everywhere-on", "--on", "--env", env)
    shown = admin("flags", "list")
    assert shown.code == 0
    assert max(len(line) for line in shown.out.splitlines()) <= 80
    words = set(re.findall(r"[A-Za-z][A-Za-z-]+", shown.out))
    for word in ("development", "production", "payments", "everywhere-on", "self-evolution-enabled"):
        assert word in words, shown.out


def test_global_audit_newest_first_with_filters(admin: Any) -> None:
    admin("flags", "create", "audited")
    admin("flags", "toggle", "audited", "--on", "--env", "staging")
    admin("flags", "toggle", "audited", "--on", "--env", "production")
    admin("flags", "serve", "audited", "--env", "production", "--percent", "20")

    newest = _json(admin("audit", "--limit", "3", "-o", "json"))
    assert len(newest) == 3
    assert [r["id"] for r in newest] == sorted((r["id"] for r in newest), reverse=True)
    assert (newest[0]["target_key"], newest[0]["action"]) == ("audited", "updated")

    production = _json(admin("audit", "--key", "audited", "--env", "production", "-o", "json"))
    # the toggle (environment column) and the default-rule edit (its diff) in production only
    assert [r["action"] for r in production] == ["updated", "toggled"]
    assert all("staging" not in json.dumps(r["diff"]) for r in production)

    assert _json(admin("audit", "--actor", "nobody-at-all", "-o", "json")) == []
    recent = _json(admin("audit", "--since", "1h", "--key", "audited", "-o", "json"))
    assert len(recent) == 4
    assert _json(admin("audit", "--since", "2999-01-01", "-o", "json")) == []
    text = admin("audit", "--key", "audited", "--limit", "1")
    assert "updated flag audited" in text.out and "raise --limit" in text.out
    bad = admin("audit", "--since", "yesterday")
    assert bad.code == 1 and "expected an age such as 30m" in bad.err


def test_experiment_created_started_and_read_from_the_cli(admin: Any, server: Server) -> None:
    admin("flags", "create", "cta-colour", "--type", "string", "--variant", "grey=grey",
          "--variant", "green=green", "--variant", "blue=blue")  # fmt: skip
    admin("flags", "toggle", "cta-colour", "--on", "--env", "production")
    created = admin("experiments", "create", "cta-colour", "--env", "production",
                    "--metric", "signup", "--start")  # fmt: skip
    assert created.code == 0, created.err
    assert "is running: grey 33.334%, green 33.333%, blue 33.333% of 100% of users" in created.out
    got = _json(admin("experiments", "list", "-o", "json"))["items"]
    mine = next(x for x in got if x["key"] == "cta-colour")
    assert (mine["status"], mine["control"], mine["primary_metric"]) == ("running", "grey", "signup")

    empty = admin("experiments", "results", "cta-colour")
    assert empty.code == 0, empty.err
    assert "no data yet: nobody has been exposed" in empty.out and "- -" not in empty.out

    # a draft with two variants and chosen weights, replaced before it starts
    admin("flags", "create", "two-way")
    draft = _json(admin("experiments", "create", "two-way", "--env", "staging", "--metric",
                        "purchase", "--variation", "false=40", "--variation", "true=60",
                        "-o", "json"))  # fmt: skip
    assert draft["status"] == "draft" and draft["control"] == "false"
    assert draft["variations"] == [{"variant": "false", "weight": 40}, {"variant": "true", "weight": 60}]
    wrong = admin("experiments", "create", "two-way", "--env", "staging", "--metric", "p",
                  "--variation", "maybe=100")  # fmt: skip
    assert wrong.code == 1 and "maybe=100" in wrong.err


def test_results_read_plainly_for_one_treatment(admin: Any, server: Server) -> None:
    admin("flags", "create", "plain-read")
    admin("flags", "toggle", "plain-read", "--on", "--env", "production")
    admin("experiments", "create", "plain-read", "--env", "production", "--metric", "buy", "--start")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}) as http:
        sdk_key = http.post("/tokens", json={"name": "plain", "kind": "sdk-server",
                                             "environment": "production"}).json()["secret"]  # fmt: skip
    # Inside the run that --start opened: a run counts only what happens during it.
    exposed_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    exposures = [{"flag_key": "plain-read", "variant": v, "user_key": f"p{v}-{i}",
                  "in_experiment": True, "timestamp": exposed_at, "reason": "SPLIT"}
                 for v in ("false", "true") for i in range(1000)]  # fmt: skip
    events = [{"metric": "buy", "user_key": f"p{v}-{i}", "value": None,
               "timestamp": exposed_at}
              for v, n in (("false", 100), ("true", 150)) for i in range(n)]  # fmt: skip
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {sdk_key}"}) as sdk:
        assert sdk.post("/exposures", json={"batch_id": "pr-e", "events": exposures}).status_code == 202
        assert sdk.post("/track", json={"batch_id": "pr-t", "events": events}).status_code == 202
    shown = admin("experiments", "results", "plain-read")
    assert shown.code == 0, shown.err
    text = " ".join(shown.out.split())
    assert "+5.00 pp" in text  # 10 % -> 15 %: five percentage points, not "+5.00%"
    assert "(adj.)" not in text and "Holm" not in text
    assert "true is better than false: +5.00 pp (+50.0% relative), significant at 95 %" in text


@pytest.fixture
def hung_server() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_a_hung_server_shows_progress_then_a_clear_timeout(
    cli: Any, hung_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGSTAFF_TIMEOUT", "3")
    hung = cli("--url", hung_server, "--token", "fsm_x", "flags", "list")
    assert hung.code == 2
    assert f"waiting for {hung_server} to answer GET /flags (gives up after 3 s)" in hung.err
    assert "accepted the connection but did not answer within 3 s" in hung.err
    assert "FLAGSTAFF_TIMEOUT" in hung.err


def test_an_insecure_dev_server_needs_no_token(cli: Any, tmp_path: Path) -> None:
    with server_process(
        f"sqlite:///{tmp_path / 'dev.db'}", tmp_path / "dev.log",
        FLAGSTAFF_INSECURE_DEV="true", FLAGSTAFF_LOG_LEVEL="WARNING",
    ) as dev:  # fmt: skip
        made = cli("--url", dev.url, "flags", "create", "no-token-needed")
        assert made.code == 0, made.err
        listed = _json(cli("--url", dev.url, "flags", "list", "-o", "json"))
        assert [f["key"] for f in listed] == ["no-token-needed"]

