"""Environment routes (admin writes): development, staging, production and any others."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from flagstaff.server.auth import Admin, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.models import EnvironmentIn
from flagstaff.store import Store

router = APIRouter(prefix="/environments", tags=["environments"])

StoreDep = Annotated[Store, Depends(get_store)]
EnvKey = Annotated[str, Path(max_length=128)]


@router.post("", status_code=201, summary="Create an environment", responses=error_responses(400, 401, 403, 409))
def create_environment(body: EnvironmentIn, principal: Admin, store: StoreDep) -> dict[str, Any]:
    record = store.create_environment(key=body.key, name=body.name, actor=principal.actor)
    return dict(record.to_dict())


@router.get("", summary="List environments", responses=error_responses(401, 403))
def list_environments(_: Viewer, store: StoreDep) -> dict[str, Any]:
    return {"items": [r.to_dict() for r in store.list_environments()]}


@router.get("/{key}", summary="Get an environment", responses=error_responses(401, 403, 404))
def get_environment(key: EnvKey, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return dict(store.get_environment(key=key).to_dict())


@router.delete("/{key}", status_code=204, summary="Delete an environment", responses=error_responses(401, 403, 404))
def delete_environment(key: EnvKey, principal: Admin, store: StoreDep) -> Response:
    store.delete_environment(key=key, actor=principal.actor)
    return Response(status_code=204)
