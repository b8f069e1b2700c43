"""Webhook subscriptions: where to send which events, signed with whose secret (admins only).

A subscription has a URL, a format (``json``, or ``slack`` for Slack-compatible incoming
webhooks), event filters (name patterns such as ``flag.*``; flag keys; environments; flag tags;
an empty filter matches everything) and a signing secret.  The secret is returned once, when
the subscription is created or its secret rotated, and never written to the audit log.
Whether a URL may be called at all (the server's SSRF stance) is the server's decision, made
when the subscription is saved and again before every delivery.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from flagstaff.errors import Invalid, NotFound
from flagstaff.store import audit
from flagstaff.store.db import now
from flagstaff.store.governance.records import WebhookRecord
from flagstaff.store.governance.tables import webhooks

FORMATS = ("json", "slack")
SECRET_PREFIX = "whsec_"
_PATTERN = re.compile(r"^(\*|[a-z_]+\.(\*|[a-z_]+))$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
FILTER_MAX = 100
FIELDS = ("url", "description", "format", "events", "flags", "environments", "tags", "active", "secret")


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _record(row: sa.Row[Any]) -> WebhookRecord:
    return WebhookRecord(
        id=int(row.id), url=row.url, description=row.description, format=row.format,
        events=list(row.events or []), flags=list(row.flags or []),
        environments=list(row.environments or []), tags=list(row.tags or []),
        active=bool(row.active), created_at=row.created_at, created_by=row.created_by,
        updated_at=row.updated_at,
    )


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not 1 <= len(url) <= 2048:
        raise Invalid("url must be a string of at most 2048 characters", details={"field": "url"})
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("url must be an http:// or https:// URL with a host", details={"field": "url"})
    if parts.username or parts.password:
        raise Invalid("url must not carry a user name or password", details={"field": "url"})
    return url


def _list(body: Mapping[str, Any], name: str, pattern: re.Pattern[str], what: str) -> list[str]:
    value = body.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > FILTER_MAX:
        raise Invalid(f"{name} must be a list of at most {FILTER_MAX} {what}", details={"field": name})
    for index, item in enumerate(value):
        if not isinstance(item, str) or not pattern.fullmatch(item):
            raise Invalid(f"{name}[{index}] is not a valid {what[:-1]}", details={"field": f"{name}[{index}]"})
    return list(dict.fromkeys(value))


def check(body: Any, current: WebhookRecord | None) -> dict[str, Any]:
    """Column values from a create (``current`` None) or update body."""
    if not isinstance(body, Mapping):
        raise Invalid("a webhook must be a JSON object", details={"field": ""})
    unknown = sorted(set(body) - set(FIELDS) - {"id", "created_at", "created_by", "updated_at"})
    if unknown:
        raise Invalid(
            f"unknown webhook field {unknown[0]!r} (fields: {', '.join(FIELDS)})",
            details={"field": unknown[0]},
        )
    values: dict[str, Any] = {}
    if current is None or "url" in body:
        values["url"] = check_url(body.get("url"))
    if "description" in body or current is None:
        description = body.get("description") or ""
        if not isinstance(description, str) or len(description) > 200:
            raise Invalid("description must be at most 200 characters", details={"field": "description"})
        values["description"] = description
    if "format" in body or current is None:
        fmt = body.get("format", "json")
        if fmt not in FORMATS:
            raise Invalid(f"format must be one of {', '.join(FORMATS)}", details={"field": "format"})
        values["format"] = fmt
    if "events" in body or current is None:
        values["events"] = _list(body, "events", _PATTERN, "event patterns") or ["*"]
    for name in ("flags", "environments", "tags"):
        if name in body or current is None:
            values[name] = _list(body, name, _KEY, "keys")
    if "active" in body or current is None:
        active = body.get("active", True)
        if not isinstance(active, bool):
            raise Invalid("active must be true or false", details={"field": "active"})
        values["active"] = active
    if body.get("secret") is not None:
        secret = body["secret"]
        if not isinstance(secret, str) or not 16 <= len(secret) <= 128:
            raise Invalid("secret must have 16 to 128 characters", details={"field": "secret"})
        values["secret"] = secret
    return values


def get(conn: sa.Connection, *, webhook_id: int) -> WebhookRecord:
    row = conn.execute(sa.select(webhooks).where(webhooks.c.id == webhook_id)).first()
    if row is None:
        raise NotFound(f"webhook {webhook_id} does not exist", details={"id": webhook_id})
    return _record(row)


def list_all(conn: sa.Connection) -> list[WebhookRecord]:
    return [_record(row) for row in conn.execute(sa.select(webhooks).order_by(webhooks.c.id))]


def _audit(
    conn: sa.Connection, *, actor: str, action: str, before: WebhookRecord | None,
    after: WebhookRecord | None, context: dict[str, Any] | None = None,
) -> None:
    target = after or before
    assert target is not None
    audit.record(
        conn, actor=actor, action=action, target_kind="webhook", target_key=str(target.id),
        before=None if before is None else before.to_dict(),
        after=None if after is None else after.to_dict(), context=context,
    )


def create(conn: sa.Connection, *, body: Any, actor: str) -> tuple[WebhookRecord, str]:
    values = check(body, None)
    secret = values.pop("secret", None) or new_secret()
    moment = now()
    result = conn.execute(
        webhooks.insert().values(
            secret=secret, created_at=moment, created_by=actor, updated_at=moment, **values
        )
    )
    record = get(conn, webhook_id=int(result.inserted_primary_key[0]))  # type: ignore[index]
    _audit(conn, actor=actor, action="created", before=None, after=record)
    return record, secret


def update(conn: sa.Connection, *, webhook_id: int, body: Any, actor: str) -> WebhookRecord:
    current = get(conn, webhook_id=webhook_id)
    values = check(body, current)
    rotated = "secret" in values
    conn.execute(
        webhooks.update().where(webhooks.c.id == webhook_id).values(updated_at=now(), **values)
    )
    record = get(conn, webhook_id=webhook_id)
    _audit(conn, actor=actor, action="updated", before=current, after=record,
           context={"secret_rotated": True} if rotated else None)
    return record


def rotate_secret(conn: sa.Connection, *, webhook_id: int, actor: str) -> tuple[WebhookRecord, str]:
    secret = new_secret()
    return update(conn, webhook_id=webhook_id, body={"secret": secret}, actor=actor), secret


def delete(conn: sa.Connection, *, webhook_id: int, actor: str) -> None:
    current = get(conn, webhook_id=webhook_id)
    # Audited first: the record's own deliveries are deleted with the subscription below.
    _audit(conn, actor=actor, action="deleted", before=current, after=None)
    conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id))


def signing_secret(conn: sa.Connection, *, webhook_id: int) -> str:
    value = conn.execute(
        sa.select(webhooks.c.secret).where(webhooks.c.id == webhook_id)
    ).scalar_one_or_none()
    if value is None:
        raise NotFound(f"webhook {webhook_id} does not exist", details={"id": webhook_id})
    return str(value)
