from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from flagstaff.errors import Invalid
from flagstaff.store import Store
from flagstaff.store.schema import tokens


def test_secret_is_shown_once_and_stored_only_as_sha256(store: Store) -> None:
    record, secret = store.create_token(name="ci", kind="management", role="editor", actor="admin")
    assert secret.startswith("fsm_") and len(secret) > 40
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(tokens.c.secret_hash)).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(store.list_tokens()) and stored not in repr(
        store.list_tokens()[0].to_dict()
    )
    found = store.authenticate(secret=secret)
    assert found is not None and found.id == record.id and found.role == "editor"
    assert store.authenticate(secret=secret + "x") is None
    audit = store.list_audit(action="token_created").items
    assert [a.target_key for a in audit] == [record.id]


def test_sdk_keys_have_prefixes_and_need_an_environment(store: Store) -> None:
    _, server_key = store.create_token(
        name="s", kind="sdk-server", environment="production", actor="a"
    )
    _, client_key = store.create_token(
        name="c", kind="sdk-client", environment="staging", actor="a"
    )
    assert server_key.startswith("fss_") and client_key.startswith("fsc_")
    for kwargs, field in [
        ({"kind": "sdk-server"}, "environment"),
        ({"kind": "sdk-server", "environment": "moon"}, "environment"),
        ({"kind": "management"}, "role"),
        ({"kind": "management", "role": "god"}, "role"),
        ({"kind": "robot"}, "kind"),
    ]:
        with pytest.raises(Invalid) as info:
            store.create_token(name="x", actor="a", **kwargs)
        assert info.value.details["field"] == field
    assert store.count_tokens() == 2


def test_revoked_token_no_longer_authenticates(store: Store) -> None:
    record, secret = store.create_token(name="t", kind="management", role="viewer", actor="a")
    revoked = store.revoke_token(token_id=record.id, actor="admin")
    assert revoked.revoked_at is not None
    assert store.authenticate(secret=secret) is None
    listed = store.list_tokens()[0]
    assert listed.revoked_at is not None
    assert [a.action for a in store.list_audit(target_kind="token").items] == [
        "token_created",
        "token_revoked",
    ]


def test_a_revocation_is_a_change_event_naming_the_key_never_its_secret(store: Store) -> None:
    record, secret = store.create_token(name="s", kind="sdk-server", environment="staging",
                                        actor="a")
    before = store.latest_event_id()
    store.revoke_token(token_id=record.id, actor="admin")
    store.revoke_token(token_id=record.id, actor="admin")  # again: nothing new
    events = store.events_since(after_id=before)
    assert [(e.type, e.kind, e.key) for e in events] == [("token_revoked", "token", record.id)]
    assert events[0].data == {"kind": "sdk-server", "environment": "staging"}
    digest = hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in repr(events) and digest not in repr(events)


def test_last_used_is_recorded_at_most_once_a_minute(store: Store) -> None:
    _record, secret = store.create_token(name="t", kind="management", role="viewer", actor="a")
    assert store.list_tokens()[0].last_used_at is None
    store.authenticate(secret=secret)
    first = store.list_tokens()[0].last_used_at
    assert first is not None
    store.authenticate(secret=secret)
    assert store.list_tokens()[0].last_used_at == first
    with store.engine.begin() as conn:
        conn.execute(tokens.update().values(last_used_at=first - timedelta(minutes=2)))
    store.authenticate(secret=secret)
    later = store.list_tokens()[0].last_used_at
    assert later is not None and later > first - timedelta(minutes=2)


def test_bootstrap_admin_only_on_an_empty_table(store: Store) -> None:
    given = "my-automation-token-0123456789"
    assert store.ensure_bootstrap_admin(secret=given) == given
    admin = store.authenticate(secret=given)
    assert admin is not None and admin.role == "admin" and admin.kind == "management"
    assert store.ensure_bootstrap_admin() is None
    assert store.count_tokens() == 1


def test_bootstrap_admin_generates_a_secret(store: Store) -> None:
    secret = store.ensure_bootstrap_admin()
    assert secret is not None and secret.startswith("fsm_")
    assert store.authenticate(secret=secret) is not None
