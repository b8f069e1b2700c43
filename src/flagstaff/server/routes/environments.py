"""Environment routes (admin writes): development, staging, production and any others.

``/environments/{key}/client-access`` holds what browsers may do there (allowed origins,
secure mode; docs/browser.md) and ``/environments/{key}/secure-mode-secret`` the key back ends
sign context keys with (admins only; never in the audit log).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response

from flagstaff.errors import NotFound
from flagstaff.server.auth import Admin, Viewer
from flagstaff.server.browser.guard import access_policy
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.models import ClientAccessIn, EnvironmentIn
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


@router.get(
    "/{key}/client-access", summary="What browsers may do here: allowed origins, secure mode",
    responses=error_responses(401, 403, 404),
)
def get_client_access(key: EnvKey, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return store.get_client_access(environment=key).to_dict()


@router.patch(
    "/{key}/client-access", summary="Set the allowed origins and/or secure mode",
    responses=error_responses(400, 401, 403, 404),
)
def update_client_access(
    request: Request, key: EnvKey, body: ClientAccessIn, principal: Admin, store: StoreDep
) -> dict[str, Any]:
    record = store.update_client_access(
        environment=key, allowed_origins=body.allowed_origins, secure_mode=body.secure_mode,
        actor=principal.actor,
    )
    access_policy(request).invalidate()  # this replica applies it at once, others within seconds
    return record.to_dict()


@router.get(
    "/{key}/secure-mode-secret", summary="The secret back ends sign context keys with",
    responses=error_responses(401, 403, 404),
)
def get_secure_mode_secret(key: EnvKey, _: Admin, store: StoreDep) -> dict[str, Any]:
    secret = store.get_client_access(environment=key).secure_mode_secret
    if secret is None:
        raise NotFound(
            f"environment {key!r} has no secure-mode secret yet: turn secure mode on "
            f"(PATCH /environments/{key}/client-access) or POST here to create one",
            details={"environment": key},
        )
    return {"environment": key, "secret": secret}


@router.post(
    "/{key}/secure-mode-secret", summary="Create or rotate the secure-mode secret",
    responses=error_responses(401, 403, 404),
)
def rotate_secure_mode_secret(
    request: Request, key: EnvKey, principal: Admin, store: StoreDep
) -> dict[str, Any]:
    secret = store.secure_mode_secret(environment=key, rotate=True, actor=principal.actor)
    access_policy(request).invalidate()
    return {"environment": key, "secret": secret}
