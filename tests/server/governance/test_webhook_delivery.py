"""Webhooks end to end: a real local receiver that is down, fails, times out and recovers gets
every event afterwards, in order, signed; the delivery log shows each attempt; redelivery."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.governance import signing
from flagstaff.server.settings import Settings
from tests.server.conftest import ADMIN_SECRET, auth
from tests.server.governance.receiver import Receiver, wait_for

FAST = dict(
    webhook_allow_loopback=True, webhook_poll_seconds=0.05, webhook_timeout_seconds=0.5,
    webhook_retry_base_seconds=0.2, webhook_retry_max_seconds=0.6,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.stop()


def client_for(database_url: str, **overrides: Any) -> TestClient:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        **{**FAST, **overrides})
    return TestClient(create_app(settings), headers=auth(ADMIN_SECRET))


def deliveries(client: TestClient, hook: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/webhooks/{hook}/deliveries",
                                             params={"limit": 500}).json()["items"]
    return list(reversed(items))


def attempts(client: TestClient, hook: int, delivery: int) -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = client.get(f"/webhooks/{hook}/deliveries/{delivery}").json()[
        "attempt_log"]
    return log


def test_a_receiver_that_is_down_fails_and_times_out_gets_every_event_in_order_afterwards(
    database_url: str, receiver: Receiver
) -> None:
    with client_for(database_url) as client:
        hook = client.post("/webhooks", json={"url": receiver.url + "/json", "events": ["flag.*"]})
        assert hook.status_code == 201, hook.text
        hook_id, secret = hook.json()["id"], hook.json()["secret"]
        slack = client.post("/webhooks", json={"url": receiver.url + "/slack", "format": "slack",
                                               "events": ["flag.killed"]}).json()
        # The receiver is down (nothing listens on its port) while the changes happen.
        assert client.post("/flags", json={"key": "checkout", "type": "boolean"}).status_code == 201
        for enabled in (True, False, True):
            client.patch("/flags/checkout/environments/production", json={"enabled": enabled})
        client.post("/flags/checkout/environments/production/kill")
        expected = [d["audit_id"] for d in deliveries(client, hook_id)]
        assert len(expected) == 5
        first = deliveries(client, hook_id)[0]["id"]
        wait_for(lambda: len(attempts(client, hook_id, first)) >= 2, what="refused attempts")

        receiver.mode = "error"
        receiver.start()
        wait_for(lambda: any(a["response_code"] == 500 for a in attempts(client, hook_id, first)),
                 what="a 500 attempt")
        receiver.mode, receiver.delay = "slow", 1.5
        wait_for(lambda: any("timed out" in (a["error"] or "") for a in attempts(client, hook_id, first)),
                 what="a timed-out attempt")
        assert receiver.at("/json") == []  # nothing got through, nothing overtook the first
        receiver.mode = "ok"
        wait_for(lambda: all(d["status"] == "delivered" for d in deliveries(client, hook_id)),
                 what="every delivery delivered")

        got = receiver.at("/json")
        assert [r.json["audit_id"] for r in got] == expected
        assert [r.json["event"] for r in got] == [
            "flag.created", "flag.toggled", "flag.toggled", "flag.toggled", "flag.killed"]
        now = time.time()
        for r in got:
            assert signing.verify(secret, r.headers[signing.TIMESTAMP], r.body,
                                  r.headers[signing.SIGNATURE], now=now)
            assert r.headers[signing.EVENT] == r.json["event"]
            assert r.json["link"].endswith("/ui/flags/checkout")
        assert not signing.verify("whsec_wrong", got[0].headers[signing.TIMESTAMP], got[0].body,
                                  got[0].headers[signing.SIGNATURE], now=now)
        log = attempts(client, hook_id, first)
        assert log[0]["response_code"] is None and "Connect" in log[0]["error"]
        assert [a["response_code"] for a in log if a["response_code"]][-1] == 200
        assert any(a["response_code"] == 500 for a in log)
        assert all(isinstance(a["latency_ms"], int) for a in log)
        assert log[-1]["error"] is None
        listed = deliveries(client, hook_id)[0]
        assert (listed["status"], listed["response_code"]) == ("delivered", 200)
        assert listed["attempts"] == len(log)

        wait_for(lambda: receiver.at("/slack"), what="the slack message")
        (message,) = receiver.at("/slack")
        assert "checkout" in message.json["text"] and "killed" in message.json["text"]
        assert message.json["blocks"][0]["type"] == "section"
        assert slack["format"] == "slack"

        again = client.post(f"/webhooks/{hook_id}/deliveries/{first}/redeliver")
        assert again.status_code == 202, again.text
        wait_for(lambda: len(receiver.at("/json")) == 6, what="the redelivery")
        redelivered = receiver.at("/json")[-1]
        assert redelivered.json["audit_id"] == expected[0]
        assert int(redelivered.headers[signing.DELIVERY]) == again.json()["id"] != first


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_delivery_failing_past_the_retry_window_is_given_up_and_the_queue_moves_on(
    database_url: str, receiver: Receiver
) -> None:
    with client_for(database_url, webhook_retry_for_seconds=0.6) as client:
        hook_id = client.post("/webhooks", json={"url": receiver.url, "events": ["flag.*"]}).json()["id"]
        client.post("/flags", json={"key": "a", "type": "boolean"})
        wait_for(lambda: [d["status"] for d in deliveries(client, hook_id)] == ["failed"],
                 what="the delivery given up")
        receiver.start()
        client.post("/flags", json={"key": "b", "type": "boolean"})
        wait_for(lambda: [d["status"] for d in deliveries(client, hook_id)] == ["failed", "delivered"],
                 what="the next delivery")
        assert [r.json["target"]["key"] for r in receiver.received] == ["b"]
        ping = client.post(f"/webhooks/{hook_id}/ping")
        assert ping.status_code == 202
        wait_for(lambda: len(receiver.received) == 2, what="the ping")
        assert receiver.received[-1].json["event"] == "ping"
