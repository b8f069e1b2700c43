"""Approval policies per environment (docs/governance.md): read by anyone, set by admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path

from flagstaff.server.auth import Admin, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.store import Store

router = APIRouter(tags=["change requests"])

StoreDep = Annotated[Store, Depends(get_store)]
EnvKey = Annotated[str, Path(max_length=128, description="the environment key")]
EXAMPLE = {"required_approvals": 1, "author_may_approve": False, "approver_role": "editor",
           "kill_requires_review": False}


@router.get("/policies", summary="Every environment's approval policy",
            responses=error_responses(401, 403))
def list_policies(_: Viewer, store: StoreDep) -> dict[str, Any]:
    return {"items": [p.to_dict() for p in store.list_policies()]}


@router.get("/environments/{key}/policy", summary="An environment's approval policy",
            responses=error_responses(400, 401, 403, 404))
def get_policy(key: EnvKey, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return store.get_policy(environment=key).to_dict()


@router.put("/environments/{key}/policy",
            summary="Set an environment's approval policy (required_approvals 0 turns it off)",
            responses=error_responses(400, 401, 403, 404, 413))
def put_policy(
    key: EnvKey, principal: Admin, store: StoreDep,
    body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
) -> dict[str, Any]:
    return store.put_policy(environment=key, body=body, actor=principal.actor).to_dict()
