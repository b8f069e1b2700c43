"""What the server offers relays: which SDK keys are valid, and how pages are guarded.

``POST /relay/keys``:

A relay serves downstream SDKs with their own keys, but only keys the upstream vouches for.  It
sends the SHA-256 hex digests of the keys it has been shown (never the keys) with its own
server-side SDK key, and learns, for each digest that belongs to a live SDK key, its kind, its
environment and its token id.  Unknown and revoked keys are simply absent, as are management
tokens.  A digest can only be asked about by someone who held the key, so the answer tells
nothing the key itself would not (docs/relay.md, "Keys at the relay").

``GET /relay/access``: so a relay can serve pages (client-side keys) as the server does, it
learns the browser access settings of its key's environment, and of that environment only:
the allowed origins and, while secure mode is on, the secure-mode secret.  Only a server-side
key may ask, and a server-side key already evaluates any context it likes, so the secret gives
its holder nothing new over that environment; a key of another environment learns nothing
(docs/relay.md, "Pages at the relay").
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flagstaff.errors import Forbidden, Invalid
from flagstaff.server.auth import ServerSdk
from flagstaff.server.browser.guard import access_policy
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.server.routes.evaluate import load_access_policy

router = APIRouter(tags=["relay"])

MAX_HASHES = 1000
_HASH = re.compile(r"^[0-9a-f]{64}\Z")


class KeysIn(BaseModel):
    hashes: list[str] = Field(
        max_length=MAX_HASHES, description="SHA-256 hex digests of SDK keys (lowercase)"
    )


@router.post(
    "/relay/keys", summary="Which of these SDK keys (by SHA-256 digest) are live",
    responses=error_responses(400, 401, 403),
)
async def relay_keys(request: Request, body: KeysIn, principal: ServerSdk) -> dict[str, Any]:
    for index, digest in enumerate(body.hashes):
        if not _HASH.match(digest):
            raise Invalid("hashes[]: each must be 64 lowercase hex digits (SHA-256)",
                          details={"field": f"hashes[{index}]"})
    store = get_store(request)
    found = await run_in_threadpool(lambda: store.live_sdk_keys(hashes=list(body.hashes)))
    return {"keys": {
        digest: {"kind": record.kind, "environment": record.environment, "token_id": record.id}
        for digest, record in found.items()
    }}


@router.get(
    "/relay/access",
    summary="Browser access of this key's environment (origins, secure mode), for its relays",
    responses=error_responses(401, 403),
)
async def relay_access(
    request: Request, principal: ServerSdk,
    environment: Annotated[str | None, Query(
        max_length=128, description="must be the key's own environment if given")] = None,
) -> dict[str, Any]:
    own = principal.environment
    if own is None or (environment is not None and environment != own):
        raise Forbidden(f"this SDK key is bound to {own!r}, not {environment!r}",
                        details={"field": "environment"})
    await load_access_policy(request)
    access = access_policy(request).environment(own)
    return {
        "environment": own,
        "allowed_origins": sorted(access.origins),
        "secure_mode": access.secure_mode_secret is not None,
        "secure_mode_secret": access.secure_mode_secret,
    }
