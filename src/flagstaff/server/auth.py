"""Bearer-token authentication and the role/kind checks every route declares.

A request's token becomes a :class:`Principal` through ``store.authenticate`` (hash lookup,
constant-time compare, revocation).  Routes state what they need with
:func:`require_management` (a minimum role) or :func:`require_sdk` (allowed key kinds);
missing, unknown or revoked tokens are 401, a valid token that may not do this is 403.
The audit actor is derived here from the principal, never from the request body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flagstaff.errors import Forbidden, Unauthorized
from flagstaff.server.deps import get_settings, get_store
from flagstaff.server.token_cache import TokenCache
from flagstaff.store import TokenRecord

MANAGEMENT = "management"
SDK_SERVER = "sdk-server"
SDK_CLIENT = "sdk-client"
SDK_KINDS = frozenset({SDK_SERVER, SDK_CLIENT})
_ROLE_RANK = {"viewer": 0, "editor": 1, "admin": 2}

bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`: a management token (fsm_...) or an SDK key "
    "(fss_... server-side, fsc_... client-side).",
)


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    name: str
    kind: str
    role: str | None
    environment: str | None

    @property
    def actor(self) -> str:
        """The audit actor: who, by token name and id (unique even if names repeat)."""
        return f"{self.name} (token {self.token_id})"

    @property
    def is_management(self) -> bool:
        return self.kind == MANAGEMENT


INSECURE_DEV_PRINCIPAL = Principal(
    token_id="insecure-dev", name="insecure-dev", kind=MANAGEMENT, role="admin", environment=None
)


def principal_from(record: TokenRecord) -> Principal:
    return Principal(
        token_id=record.id,
        name=record.name,
        kind=record.kind,
        role=record.role,
        environment=record.environment,
    )


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal behind the request's bearer token; 401 if there is none or it is bad."""
    if credentials is None:
        if get_settings(request).insecure_dev:
            return INSECURE_DEV_PRINCIPAL
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return authenticate_secret(request, credentials.credentials)


def authenticate_secret(request: Request, secret: str) -> Principal:
    """The principal behind ``secret`` wherever it came from; 401 if unknown or revoked."""
    record = get_store(request).authenticate(secret=secret)
    if record is None:
        raise Unauthorized("unknown or revoked token")
    principal = principal_from(record)
    request.state.principal = principal
    return principal


async def authenticate_from_memory(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """:func:`authenticate` for the evaluation routes: the same answers, with the token taken
    from the change-fed :class:`~flagstaff.server.token_cache.TokenCache` (no database round
    trip and no worker thread for a key seen in the last minute)."""
    if credentials is None:
        if get_settings(request).insecure_dev:
            return INSECURE_DEV_PRINCIPAL
        raise Unauthorized("missing bearer token (Authorization: Bearer <token>)")
    cache: TokenCache = request.app.state.token_cache
    record = await cache.authenticate(credentials.credentials)
    if record is None:
        raise Unauthorized("unknown or revoked token")
    principal = principal_from(record)
    request.state.principal = principal
    return principal


def require_management(role: str) -> Callable[[Principal], Principal]:
    """A dependency admitting management tokens whose role is at least ``role``."""
    needed = _ROLE_RANK[role]

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.is_management:
            raise Forbidden("this route needs a management token, not an SDK key")
        if _ROLE_RANK.get(principal.role or "", -1) < needed:
            raise Forbidden(f"this route needs the {role} role (token has {principal.role})")
        return principal

    check.__name__ = f"require_{role}"
    return check


def require_sdk(kinds: Iterable[str]) -> Callable[[Principal], Principal]:
    """A dependency admitting SDK keys of the given kinds only."""
    allowed = frozenset(kinds)

    def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.kind not in allowed:
            names = " or ".join(sorted(allowed))
            raise Forbidden(f"this route needs an SDK key of kind {names}")
        return principal

    check.__name__ = "require_sdk_" + "_".join(sorted(k.replace("-", "_") for k in allowed))
    return check


Viewer = Annotated[Principal, Depends(require_management("viewer"))]
Editor = Annotated[Principal, Depends(require_management("editor"))]
Admin = Annotated[Principal, Depends(require_management("admin"))]
ServerSdk = Annotated[Principal, Depends(require_sdk([SDK_SERVER]))]
AnyPrincipal = Annotated[Principal, Depends(authenticate)]
EvaluatingPrincipal = Annotated[Principal, Depends(authenticate_from_memory)]
