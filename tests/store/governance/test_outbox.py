"""The webhook outbox: deliveries commit with the change or not at all, filters choose them,
and one dispatcher at a time holds a subscription (its lease), in order."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flagstaff.errors import Invalid
from flagstaff.store import Store
from flagstaff.store.governance import outbox
from tests.builders import flag
from tests.store.governance.conftest import ALICE, BOB, boolean_flag, soon

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def events(store: Store, webhook_id: int) -> list[str]:
    return [d.event for d in reversed(store.list_deliveries(webhook_id=webhook_id).items)]


def test_deliveries_commit_with_their_change_or_not_at_all(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything, _ = store.create_webhook(body={"url": "https://example.com/all"}, actor=ALICE)
    prod_flags, _ = store.create_webhook(
        body={"url": "https://example.com/prod", "events": ["flag.*"],
              "environments": ["production"], "tags": ["checkout"]},
        actor=ALICE,
    )
    boolean_flag(store, "checkout", tags=["checkout"])
    boolean_flag(store, "search", tags=["search"])
    store.set_flag_enabled(key="checkout", environment="production", enabled=True, actor=BOB)
    store.set_flag_enabled(key="search", environment="production", enabled=True, actor=BOB)
    store.set_flag_enabled(key="checkout", environment="staging", enabled=True, actor=BOB)
    enqueue = outbox.enqueue
    with pytest.raises(Invalid):  # refused write: no delivery
        store.patch_flag(key="checkout", patch={"type": "nope"}, actor=BOB)

    def queue_then_crash(*args: Any, **kwargs: Any) -> int:
        enqueue(*args, **kwargs)
        raise RuntimeError("crash after the deliveries were queued")

    monkeypatch.setattr(outbox, "enqueue", queue_then_crash)
    with pytest.raises(RuntimeError):
        store.set_flag_enabled(key="checkout", environment="production", enabled=False, actor=BOB)
    monkeypatch.undo()

    assert events(store, prod_flags.id) == ["flag.toggled"]  # production + tag only
    assert events(store, everything.id) == [
        "webhook.created", "webhook.created", "flag.created", "flag.created", "flag.toggled",
        "flag.toggled", "flag.toggled",
    ]
    delivery = store.list_deliveries(webhook_id=prod_flags.id).items[0]
    payload = delivery.payload
    assert payload["flag"] == "checkout" and payload["environment"] == "production"
    assert payload["actor"] == BOB and payload["version"] == 2
    assert payload["diff"] == [{"path": "environments.production.enabled", "op": "replace",
                                "old": False, "new": True}]
    assert store.get_flag(key="checkout").definition["environments"]["production"]["enabled"]


def test_one_dispatcher_holds_a_subscription_at_a_time_and_failures_block_it(store: Store) -> None:
    hook, secret = store.create_webhook(
        body={"url": "https://example.com/h", "events": ["flag.*"]}, actor=ALICE
    )
    assert secret.startswith("whsec_")
    for key in ("a", "b"):
        store.create_flag(definition=flag(key).boolean().build(), actor=ALICE)
    now = soon(0)
    lease = timedelta(seconds=30)
    assert store.webhooks_have_work(at=now)
    (claimed,) = store.claim_webhooks(owner="one", at=now, lease=lease)
    assert (claimed.webhook_id, claimed.secret, claimed.url) == (hook.id, secret, hook.url)
    assert store.claim_webhooks(owner="two", at=now, lease=lease) == []
    assert not store.webhooks_have_work(at=now)

    head = store.delivery_head(webhook_id=hook.id)
    assert head is not None and head.payload["target"]["key"] == "a"
    retry_at = now + timedelta(seconds=10)
    failed = store.record_delivery_attempt(delivery=head, at=now, response_code=500,
                                           latency_ms=12, error="HTTP 500", next_attempt_at=retry_at)
    assert (failed.status, failed.attempts, failed.response_code) == ("pending", 1, 500)
    store.release_webhook(webhook_id=hook.id, owner="one", blocked_until=retry_at)
    # Blocked until the retry: the second event must not overtake the first.
    assert store.claim_webhooks(owner="two", at=now + timedelta(seconds=5), lease=lease) == []
    (again,) = store.claim_webhooks(owner="two", at=retry_at, lease=lease)
    assert again.webhook_id == hook.id
    head = store.delivery_head(webhook_id=hook.id)
    assert head is not None and head.id == failed.id
    done = store.record_delivery_attempt(delivery=head, at=retry_at, response_code=204,
                                         latency_ms=8, error=None, next_attempt_at=None)
    assert (done.status, done.attempts) == ("delivered", 2)
    _, attempts = store.get_delivery(webhook_id=hook.id, delivery_id=done.id)
    assert [(a.response_code, a.error) for a in attempts] == [(500, "HTTP 500"), (204, None)]
    # A lease that expired (its dispatcher died) is taken over.
    assert store.renew_webhook_lease(webhook_id=hook.id, owner="two", until=retry_at + lease)
    taken = store.claim_webhooks(owner="three", at=retry_at + lease * 2, lease=lease)
    assert [c.webhook_id for c in taken] == [hook.id]
    assert not store.renew_webhook_lease(webhook_id=hook.id, owner="two", until=soon(100))

    head = store.delivery_head(webhook_id=hook.id)
    assert head is not None
    gave_up = store.record_delivery_attempt(delivery=head, at=retry_at, response_code=None,
                                            latency_ms=10_000, error="timed out", next_attempt_at=None)
    assert gave_up.status == "failed"
    copy = store.redeliver(webhook_id=hook.id, delivery_id=gave_up.id, actor=ALICE)
    assert (copy.status, copy.redelivery_of, copy.payload) == ("pending", gave_up.id, gave_up.payload)
    assert store.delivery_head(webhook_id=hook.id) == copy


@sqlite_only
def test_webhook_subscriptions_validate_and_keep_their_secret_out_of_sight(store: Store) -> None:
    for body, field in [
        ({"url": "ftp://example.com"}, "url"),
        ({"url": "https://user:pw@example.com"}, "url"),
        ({"url": "https://example.com", "events": ["Flag.*"]}, "events[0]"),
        ({"url": "https://example.com", "format": "xml"}, "format"),
        ({"url": "https://example.com", "secret": "short"}, "secret"),
        ({"url": "https://example.com", "colour": "red"}, "colour"),
    ]:
        with pytest.raises(Invalid) as caught:
            store.create_webhook(body=body, actor=ALICE)
        assert caught.value.details["field"] == field
    hook, secret = store.create_webhook(
        body={"url": "https://example.com", "secret": "s" * 20, "format": "slack"}, actor=ALICE
    )
    assert secret == "s" * 20
    rotated, new = store.rotate_webhook_secret(webhook_id=hook.id, actor=ALICE)
    assert new != secret and rotated.format == "slack"
    history = store.list_audit(target_kind="webhook", target_key=str(hook.id)).items
    assert [h.action for h in history] == ["created", "updated"]
    assert history[1].context == {"secret_rotated": True}
    assert all(secret not in str(h.to_dict()) and new not in str(h.to_dict()) for h in history)
    store.delete_webhook(webhook_id=hook.id, actor=ALICE)
    assert store.list_webhooks() == []
