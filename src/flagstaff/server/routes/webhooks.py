"""Webhook subscriptions, their delivery log and manual redelivery (admins only).

Each audited change queues a delivery per matching subscription in its own transaction (the
outbox); the dispatcher sends them signed (``X-Flagstaff-Signature``), in order per
subscription, retrying with back-off for up to a day.  URLs are checked against the server's
egress rules (docs/governance.md, "Which URLs webhooks may call").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from flagstaff.server.auth import Admin
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.store import Store
from flagstaff.store.governance.webhooks import check_url

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

StoreDep = Annotated[Store, Depends(get_store)]
WebhookId = Annotated[int, Path(ge=1, le=2**53, description="the webhook id")]
DeliveryId = Annotated[int, Path(ge=1, le=2**53, description="the delivery id")]
READ = error_responses(400, 401, 403, 404)
WRITE = error_responses(400, 401, 403, 404, 409, 413)
EXAMPLE = {"url": "https://hooks.example.com/flagstaff", "events": ["flag.*", "schedule.failed"],
           "environments": ["production"], "format": "json", "description": "audit sink"}


def _check_url(request: Request, body: dict[str, Any]) -> None:
    if isinstance(body.get("url"), str):
        request.app.state.governance.egress.check_url(body["url"])


def _woken(request: Request) -> None:
    request.app.state.governance.deliveries_queued()


@router.post("", status_code=201,
             summary="Subscribe a URL to events; `secret` (for signatures) is in this answer only",
             responses=WRITE)
def create_webhook(
    request: Request, principal: Admin, store: StoreDep,
    body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
) -> dict[str, Any]:
    check_url(body.get("url"))  # 400 for a malformed URL before the egress rules look at it
    _check_url(request, body)
    record, secret = store.create_webhook(body=body, actor=principal.actor)
    return {**record.to_dict(), "secret": secret}


@router.get("", summary="List webhook subscriptions (never their secrets)",
            responses=error_responses(401, 403))
def list_webhooks(_: Admin, store: StoreDep) -> dict[str, Any]:
    return {"items": [w.to_dict() for w in store.list_webhooks()]}


@router.get("/{webhook_id}", summary="Get a webhook subscription", responses=READ)
def get_webhook(webhook_id: WebhookId, _: Admin, store: StoreDep) -> dict[str, Any]:
    return store.get_webhook(webhook_id=webhook_id).to_dict()


@router.patch("/{webhook_id}", summary="Change a subscription (URL, filters, format, active)",
              responses=WRITE)
def update_webhook(
    request: Request, webhook_id: WebhookId, principal: Admin, store: StoreDep,
    body: Annotated[dict[str, Any], Body(examples=[{"active": False}])],
) -> dict[str, Any]:
    _check_url(request, body)
    return store.update_webhook(webhook_id=webhook_id, body=body, actor=principal.actor).to_dict()


@router.delete("/{webhook_id}", summary="Delete a subscription and its delivery log",
               responses=WRITE)
def delete_webhook(webhook_id: WebhookId, principal: Admin, store: StoreDep) -> dict[str, Any]:
    store.delete_webhook(webhook_id=webhook_id, actor=principal.actor)
    return {"deleted": webhook_id}


@router.post("/{webhook_id}/rotate-secret",
             summary="Replace the signing secret; the new one is in this answer only",
             responses=WRITE)
def rotate_secret(webhook_id: WebhookId, principal: Admin, store: StoreDep) -> dict[str, Any]:
    record, secret = store.rotate_webhook_secret(webhook_id=webhook_id, actor=principal.actor)
    return {**record.to_dict(), "secret": secret}


@router.post("/{webhook_id}/ping", status_code=202,
             summary="Queue a `ping` delivery to check the receiver", responses=WRITE)
def ping(request: Request, webhook_id: WebhookId, principal: Admin, store: StoreDep) -> dict[str, Any]:
    record = store.ping_webhook(webhook_id=webhook_id, actor=principal.actor)
    _woken(request)
    return record.to_dict()


@router.get("/{webhook_id}/deliveries",
            summary="The delivery log: status, attempts, response code, latency (newest first)",
            responses=READ)
def list_deliveries(
    webhook_id: WebhookId, _: Admin, store: StoreDep,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = store.list_deliveries(webhook_id=webhook_id, status=status, limit=limit, cursor=cursor)
    return {"items": [d.to_dict() for d in page.items], "next_cursor": page.next_cursor}


@router.get("/{webhook_id}/deliveries/{delivery_id}",
            summary="One delivery with its payload and every attempt", responses=READ)
def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, _: Admin, store: StoreDep
) -> dict[str, Any]:
    record, attempts = store.get_delivery(webhook_id=webhook_id, delivery_id=delivery_id)
    return {**record.to_dict(with_payload=True), "attempt_log": [a.to_dict() for a in attempts]}


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", status_code=202,
             summary="Send a delivered or failed delivery again (queued as a new delivery)",
             responses=WRITE)
def redeliver(
    request: Request, webhook_id: WebhookId, delivery_id: DeliveryId, principal: Admin,
    store: StoreDep,
) -> dict[str, Any]:
    record = store.redeliver(webhook_id=webhook_id, delivery_id=delivery_id, actor=principal.actor)
    _woken(request)
    return record.to_dict()
