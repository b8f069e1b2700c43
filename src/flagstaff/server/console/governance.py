"""The console's governed-change pages: change requests (the review page), schedules, webhooks.

Pages read through the same store methods as ``/change-requests``, ``/schedules`` and
``/webhooks``; the actions under ``/ui/api/`` check the session, CSRF token and role first and
then call those methods with the signed-in principal as the actor, so the policy (who may
approve, the author rule) is enforced in one place, the store.  docs/governance.md.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from flagstaff.engine.reassignment import reassignments
from flagstaff.errors import Invalid, NotFound
from flagstaff.server.auth import Principal
from flagstaff.server.console.api import _body
from flagstaff.server.console.rendering import render
from flagstaff.server.console.session import ConsoleRoute, current, require, writer
from flagstaff.server.deps import get_store
from flagstaff.server.routes.change_requests import view as change_view
from flagstaff.server.routes.schedules import parse_time
from flagstaff.store import Store
from flagstaff.store.governance.records import ChangeRequestRecord
from flagstaff.store.governance.webhooks import check_url

router = APIRouter(route_class=ConsoleRoute)

StoreDep = Annotated[Store, Depends(get_store)]
CHANGE_STATUSES = ("open", "approved", "scheduled", "applied", "rejected", "cancelled", "conflict")
SCHEDULE_STATUSES = ("pending", "applied", "failed", "cancelled")
Status = Annotated[str | None, Query(max_length=20)]


def reassigned_shares(store: Store, record: ChangeRequestRecord) -> list[dict[str, Any]]:
    """What the proposed configuration does to the users of each rollout it changes: the flag
    as it was at the request's base, against the same flag with the proposed configuration."""
    flag = store.get_flag(key=record.flag).definition
    before, after = copy.deepcopy(flag), copy.deepcopy(flag)
    before.setdefault("environments", {})[record.environment] = record.base_config
    after.setdefault("environments", {})[record.environment] = record.proposed_config
    return [r.to_change() for r in reassignments(before, after)]


def number(value: str) -> int:
    """A record id from the path; checked after the session, so a signed-out request to any
    console URL is sent to sign in rather than told its id is malformed."""
    if not value.isdigit() or len(value) > 15:
        raise NotFound(f"no record {value!r}")
    return int(value)


def _wake(request: Request, kind: str) -> None:
    workers = getattr(request.app.state, "governance", None)
    if workers is None:
        return
    if kind == "schedules":
        workers.schedules_changed()
    else:
        workers.deliveries_queued()


# --- pages --------------------------------------------------------------------------------


@router.get("/changes")
def change_list(request: Request, store: StoreDep, status: Status = None) -> Response:
    current(request)
    shown = status if status in CHANGE_STATUSES else None
    page = store.list_change_requests(status=shown, flag=None, environment=None, limit=200, cursor=None)
    return render(request, "changes.html", {
        "changes": [r.to_dict() for r in page.items], "statuses": CHANGE_STATUSES, "status": shown or "",
    })


@router.get("/changes/{change_id}")
def change_detail(request: Request, change_id: str, store: StoreDep) -> Response:
    principal = current(request)
    record = store.get_change_request(change_request_id=number(change_id))
    change = change_view(store, record)
    policy = store.get_policy(environment=record.environment)
    return render(request, "change.html", {
        "change": change, "policy": policy.to_dict(),
        "policy_text": policy.describe() if policy.active else "no approval policy (review is optional)",
        "reassigned": reassigned_shares(store, record),
        "is_author": principal.token_id == record.author_token,
    })


@router.get("/schedules")
def schedule_list(request: Request, store: StoreDep, status: Status = None) -> Response:
    current(request)
    shown = status if status in SCHEDULE_STATUSES else None
    page = store.list_schedules(status=shown, flag=None, environment=None, limit=200, cursor=None)
    return render(request, "schedules.html", {
        "schedules": [r.to_dict() for r in page.items], "statuses": SCHEDULE_STATUSES,
        "status": shown or "", "environments": [e.key for e in store.list_environments()],
    })


@router.get("/webhooks")
def webhook_list(request: Request, store: StoreDep) -> Response:
    require(current(request), "admin")
    return render(request, "webhooks.html", {"webhooks": [w.to_dict() for w in store.list_webhooks()]})


@router.get("/webhooks/{webhook_id}")
def webhook_detail(request: Request, webhook_id: str, store: StoreDep) -> Response:
    require(current(request), "admin")
    webhook = store.get_webhook(webhook_id=number(webhook_id)).to_dict()
    page = store.list_deliveries(webhook_id=webhook["id"], status=None, limit=100, cursor=None)
    return render(request, "webhook.html", {
        "webhook": webhook, "deliveries": [d.to_dict() for d in page.items],
    })


# --- actions ------------------------------------------------------------------------------


async def _change_action(request: Request, principal: Principal, change_id: int, verdict: str) -> Response:
    body = await _body(request)
    store = get_store(request)

    def act() -> dict[str, Any]:
        if verdict == "apply":
            at = parse_time(body["at"]) if body.get("at") else None
            record = store.apply_change_request(change_request_id=change_id, actor=principal.actor, at=at)
        elif verdict == "cancel":
            record = store.cancel_change_request(
                change_request_id=change_id, actor=principal.actor, token_id=principal.token_id,
                role=principal.role or "")
        else:
            record = store.review_change_request(
                change_request_id=change_id, verdict=verdict, comment=body.get("comment") or None,
                actor=principal.actor, token_id=principal.token_id, role=principal.role or "")
        return change_view(store, record)

    answer = await run_in_threadpool(act)
    if verdict == "apply" and body.get("at"):
        _wake(request, "schedules")
    return JSONResponse({"change_request": answer})


@router.post("/api/changes/{change_id}/{verdict}")
async def change_action(request: Request, change_id: str, verdict: str) -> Response:
    principal = await run_in_threadpool(writer, request, "editor")
    verdicts = {"approve": "approved", "reject": "rejected", "comment": "commented",
                "apply": "apply", "cancel": "cancel"}
    if verdict not in verdicts:
        raise Invalid(f"unknown action {verdict!r}", details={"field": "action"})
    return await _change_action(request, principal, number(change_id), verdicts[verdict])


@router.post("/api/schedules")
async def create_schedule(request: Request) -> Response:
    principal = await run_in_threadpool(writer, request, "editor")
    body = await _body(request)
    store = get_store(request)
    for field in ("flag", "environment"):
        if not isinstance(body.get(field), str) or not body[field]:
            raise Invalid(f"{field} is required (a key)", details={"field": field})
    record = await run_in_threadpool(lambda: store.create_schedule(
        flag=body["flag"], environment=body["environment"], at=parse_time(body.get("at")),
        action=body.get("action"), body=body, description=body.get("description"),
        actor=principal.actor))
    _wake(request, "schedules")
    return JSONResponse({"schedule": record.to_dict()}, status_code=201)


@router.delete("/api/schedules/{schedule_id}")
async def cancel_schedule(request: Request, schedule_id: str) -> Response:
    principal = await run_in_threadpool(writer, request, "editor")
    store = get_store(request)
    record = await run_in_threadpool(
        lambda: store.cancel_schedule(schedule_id=number(schedule_id), actor=principal.actor))
    return JSONResponse({"schedule": record.to_dict()})


@router.post("/api/webhooks")
async def create_webhook(request: Request) -> Response:
    principal = await run_in_threadpool(writer, request, "admin")
    body = await _body(request)
    check_url(body.get("url"))
    if isinstance(body.get("url"), str):
        request.app.state.governance.egress.check_url(body["url"])
    store = get_store(request)
    record, secret = await run_in_threadpool(
        lambda: store.create_webhook(body=body, actor=principal.actor))
    return JSONResponse({"webhook": record.to_dict(), "secret": secret}, status_code=201)


@router.post("/api/webhooks/{webhook_id}/ping")
async def ping_webhook(request: Request, webhook_id: str) -> Response:
    principal = await run_in_threadpool(writer, request, "admin")
    store = get_store(request)
    record = await run_in_threadpool(lambda: store.ping_webhook(webhook_id=number(webhook_id), actor=principal.actor))
    _wake(request, "deliveries")
    return JSONResponse({"delivery": record.to_dict()}, status_code=202)


@router.post("/api/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")
async def redeliver(request: Request, webhook_id: str, delivery_id: str) -> Response:
    principal = await run_in_threadpool(writer, request, "admin")
    store = get_store(request)
    record = await run_in_threadpool(lambda: store.redeliver(
        webhook_id=number(webhook_id), delivery_id=number(delivery_id), actor=principal.actor))
    _wake(request, "deliveries")
    return JSONResponse({"delivery": record.to_dict()}, status_code=202)
