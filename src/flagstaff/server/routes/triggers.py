"""Incoming triggers: a secret URL that turns one flag off in one environment.

``POST /flags/{key}/environments/{env}/triggers`` (editor) answers the URL once; an alerting
system then calls ``POST /incoming/triggers/<secret>`` without any other credential (the
secret is the credential, so treat the URL like a token).  Every call is audited; revoking
makes the URL answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from flagstaff.server.auth import Editor, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.etags import etag
from flagstaff.store import Store
from flagstaff.store.governance.policies import config_of

router = APIRouter(tags=["triggers"])

StoreDep = Annotated[Store, Depends(get_store)]
FlagKey = Annotated[str, Path(max_length=128, description="the flag key")]
EnvKey = Annotated[str, Path(max_length=128, description="the environment key")]
INCOMING = "/incoming/triggers/"


@router.post(
    "/flags/{key}/environments/{environment}/triggers", status_code=201,
    summary="Create a trigger URL that turns this flag off here; the URL is in this answer only",
    responses=error_responses(400, 401, 403, 404, 413),
)
def create_trigger(
    request: Request, key: FlagKey, environment: EnvKey, principal: Editor, store: StoreDep,
    body: Annotated[dict[str, Any] | None, Body(examples=[{"name": "error-rate alert"}])] = None,
) -> dict[str, Any]:
    record, secret = store.create_trigger(
        flag=key, environment=environment, name=(body or {}).get("name"), actor=principal.actor
    )
    base = request.app.state.governance.base_url
    return {**record.to_dict(), "url": f"{base}{INCOMING}{secret}"}


@router.get("/triggers", summary="List triggers (never their URLs)",
            responses=error_responses(400, 401, 403))
def list_triggers(
    _: Viewer, store: StoreDep, flag: Annotated[str | None, Query(max_length=128)] = None
) -> dict[str, Any]:
    return {"items": [t.to_dict() for t in store.list_triggers(flag=flag)]}


@router.delete("/triggers/{trigger_id}", summary="Revoke a trigger (its URL stops working)",
               responses=error_responses(400, 401, 403, 404))
def revoke_trigger(
    trigger_id: Annotated[str, Path(max_length=64)], principal: Editor, store: StoreDep
) -> dict[str, Any]:
    return store.revoke_trigger(trigger_id=trigger_id, actor=principal.actor).to_dict()


@router.post(
    INCOMING + "{secret}",
    summary="Fire a trigger: turn its flag off (no token; the secret URL is the credential)",
    responses=error_responses(400, 404, 409),
)
def fire_trigger(
    secret: Annotated[str, Path(max_length=128)], store: StoreDep
) -> dict[str, Any]:
    trigger, flag = store.fire_trigger(secret=secret)
    return {
        "trigger": trigger.id, "flag": flag.key, "environment": trigger.environment,
        "enabled": bool(config_of(flag.definition, trigger.environment)["enabled"]),
        "version": flag.version, "etag": etag(flag.version),
    }
