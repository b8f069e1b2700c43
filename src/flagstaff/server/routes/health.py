"""Liveness and readiness probes (no authentication, no secrets in the answer)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from flagstaff.errors import FlagstaffError, Unavailable
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.store import Store

router = APIRouter(tags=["operations"])
log = logging.getLogger("flagstaff.server")


@router.get("/health", summary="The process is alive")
def health() -> dict[str, Any]:
    return {"status": "ok"}


@router.get(
    "/ready", summary="The database is reachable", responses=error_responses(503),
)
def ready(store: Annotated[Store, Depends(get_store)]) -> dict[str, Any]:
    try:
        store.ping()
    except FlagstaffError as exc:
        log.warning("readiness check failed", extra={"reason": exc.message})
        raise Unavailable("the database is not reachable") from exc
    return {"status": "ready"}
