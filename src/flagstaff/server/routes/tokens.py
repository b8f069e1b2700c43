"""Token routes (admin only): create (the secret is shown once), list with last use, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from flagstaff.server.auth import Admin
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.models import TokenIn
from flagstaff.store import Store

router = APIRouter(prefix="/tokens", tags=["tokens"])

StoreDep = Annotated[Store, Depends(get_store)]


@router.post(
    "", status_code=201, summary="Create a token; `secret` is in this answer only",
    responses=error_responses(400, 401, 403),
)
def create_token(body: TokenIn, principal: Admin, store: StoreDep) -> dict[str, Any]:
    record, secret = store.create_token(
        name=body.name, kind=body.kind, role=body.role, environment=body.environment,
        actor=principal.actor,
    )
    return {**record.to_dict(), "secret": secret}


@router.get("", summary="List tokens (never their secrets)", responses=error_responses(401, 403))
def list_tokens(_: Admin, store: StoreDep) -> dict[str, Any]:
    return {"items": [r.to_dict() for r in store.list_tokens()]}


@router.delete("/{token_id}", summary="Revoke a token", responses=error_responses(401, 403, 404))
def revoke_token(
    token_id: Annotated[str, Path(max_length=64)], principal: Admin, store: StoreDep, response: Response
) -> dict[str, Any]:
    return dict(store.revoke_token(token_id=token_id, actor=principal.actor).to_dict())
