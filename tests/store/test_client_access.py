"""Browser access settings per environment, and the installation identity."""

from __future__ import annotations

import pytest

from flagstaff.errors import Invalid, NotFound
from flagstaff.store import Store
from flagstaff.store.client_access import normalise_origin


def test_defaults_update_audit_and_change_event(store: Store) -> None:
    fresh = store.get_client_access(environment="production")
    assert (fresh.allowed_origins, fresh.secure_mode, fresh.secure_mode_secret) == ((), False, None)
    before = store.latest_event_id()
    updated = store.update_client_access(
        environment="production",
        allowed_origins=["https://App.Example.com:443/", "http://localhost:5173"],
        actor="alice",
    )
    assert updated.allowed_origins == ("https://app.example.com", "http://localhost:5173")
    assert updated.secure_mode is False and updated.secure_mode_secret is None
    # Unchanged settings write nothing.
    again = store.update_client_access(environment="production", allowed_origins=[
        "https://app.example.com", "http://localhost:5173"], actor="alice")
    assert again == updated
    events = store.events_since(after_id=before)
    assert [(e.type, e.key) for e in events] == [("environment_updated", "production")]
    assert events[0].data == {"environment": "production", "secure_mode": False,
                              "allowed_origins": ["https://app.example.com", "http://localhost:5173"]}
    audit = store.list_audit(target_kind="environment", target_key="production").items
    assert audit[0].action == "updated" and audit[0].actor == "alice"
    assert {d["path"] for d in audit[0].diff} == {"allowed_origins"}
    # Other environments keep the defaults.
    by_env = {r.environment: r for r in store.list_client_access()}
    assert by_env["development"].allowed_origins == () and set(by_env) >= {"production", "staging"}


def test_secure_mode_secret_is_created_kept_rotated_and_never_in_logs(store: Store) -> None:
    on = store.update_client_access(environment="staging", secure_mode=True, actor="a")
    assert on.secure_mode and on.secure_mode_secret and on.secure_mode_secret.startswith("fsh_")
    assert store.secure_mode_secret(environment="staging", actor="a") == on.secure_mode_secret
    rotated = store.secure_mode_secret(environment="staging", rotate=True, actor="a")
    assert rotated != on.secure_mode_secret
    assert store.get_client_access(environment="staging").secure_mode_secret == rotated
    text = repr([e.data for e in store.events_since(after_id=0)])
    text += repr([(a.before, a.after, a.diff) for a in store.list_audit(limit=200).items])
    assert on.secure_mode_secret not in text and rotated not in text
    assert sorted(a.action for a in store.list_audit(target_key="staging").items) == [
        "secret_rotated", "updated"]


@pytest.mark.parametrize("bad", [
    "app.example.com", "https://app.example.com/path", "ftp://x.example", "https://",
    "https://user@app.example.com", "https://app.example.com?x=1", 7, "",
])
def test_origins_must_be_origins(store: Store, bad: object) -> None:
    with pytest.raises(Invalid) as info:
        store.update_client_access(environment="production", allowed_origins=[bad], actor="a")
    assert info.value.details["field"] == "allowed_origins[0]"
    assert store.get_client_access(environment="production").allowed_origins == ()


def test_origin_normalisation() -> None:
    assert normalise_origin("HTTP://LocalHost:80", "f") == "http://localhost"
    assert normalise_origin("https://[::1]:8443", "f") == "https://[::1]:8443"


def test_unknown_environment_and_bad_values(store: Store) -> None:
    with pytest.raises(NotFound):
        store.update_client_access(environment="nope", secure_mode=True, actor="a")
    with pytest.raises(Invalid):
        store.update_client_access(environment="production", secure_mode="yes", actor="a")
    with pytest.raises(Invalid):
        store.update_client_access(environment="production", allowed_origins="https://a.b", actor="a")


def test_installation_identity_is_stable_per_database(store: Store, tmp_path: object) -> None:
    first = store.installation()
    assert first == store.installation()
    assert len(first.id) == 32 and len(first.signing_key) >= 48
    other = Store.open(f"sqlite:///{tmp_path}/other.db")
    try:
        assert other.installation().id != first.id
    finally:
        other.close()
