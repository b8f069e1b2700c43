"""The fleet view over HTTP: instances report what they applied; people read who has it.

``POST /fleet/reports`` takes reports from SDK keys (either kind; a relay forwards the reports of
the SDKs behind it with their own keys); ``GET /fleet`` and ``GET /fleet/instances`` are for
management tokens (viewer and up).  See docs/relay.md, "The fleet view".
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flagstaff.errors import Forbidden
from flagstaff.fleet import parse_reports
from flagstaff.server.auth import SDK_KINDS, Principal, Viewer, require_sdk
from flagstaff.server.errors import error_responses
from flagstaff.server.fleet import Fleet, iso_ms
from flagstaff.server.routes.ingest import RawBody, decode_batch

router = APIRouter(tags=["fleet"])

SdkKey = Annotated[Principal, Depends(require_sdk(SDK_KINDS))]
Text = Annotated[str | None, Query(max_length=128)]
Version = Annotated[
    int | None,
    Query(ge=0, le=2**63 - 1, description="judge against this change-event id (default: the latest)"),
]


class ReportIn(BaseModel):
    instance: str = Field(description="a random id the instance picked (not a secret)")
    kind: str = Field(default="sdk", description="sdk or relay")
    version: int | None = Field(default=None, description="the change-event id it has applied")
    sdk: str | None = None
    host: str | None = None
    pid: int | None = None
    via: str | None = Field(default=None, description="the relay that forwarded the report")
    left: bool = Field(default=False, description="the instance shut down: forget it")


class ReportsIn(BaseModel):
    reports: list[ReportIn]


def _fleet(request: Request) -> Fleet:
    fleet: Fleet | None = getattr(request.app.state, "fleet", None)
    if fleet is None:  # only outside the lifespan (a TestClient without its context manager)
        raise RuntimeError("the fleet view is not running (app lifespan not started)")
    return fleet


@router.post(
    "/fleet/reports", status_code=202,
    summary="Report the change-event id an SDK instance or relay has applied",
    responses=error_responses(400, 401, 403, 413),
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ReportsIn.model_json_schema()}}}},
)
def post_reports(request: Request, raw: RawBody, principal: SdkKey) -> JSONResponse:
    if principal.environment is None:
        raise Forbidden("this SDK key is not bound to an environment")
    reports = parse_reports(decode_batch(raw))
    kept = _fleet(request).collector.heard(principal, reports)
    return JSONResponse({"accepted": kept}, status_code=202)


@router.get(
    "/fleet", summary="Which SDK instances and relays have the latest change, per environment",
    responses=error_responses(400, 401, 403),
)
async def get_fleet(
    request: Request, principal: Viewer, environment: Text = None, version: Version = None
) -> dict[str, Any]:
    view = _fleet(request).view
    return await run_in_threadpool(lambda: view.summary(environment=environment, target=version))


@router.get(
    "/fleet/instances",
    summary="The instances of the fleet view, with what each applied and when it was heard from",
    responses=error_responses(400, 401, 403),
)
async def get_instances(
    request: Request,
    principal: Viewer,
    environment: Text = None,
    kind: Annotated[str | None, Query(pattern="^(sdk|relay)$")] = None,
    status: Annotated[str | None, Query(pattern="^(current|behind|stale)$")] = None,
    version: Version = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    view = _fleet(request).view
    heard_since, stale_before = view.cutoffs()
    target, page = await run_in_threadpool(
        lambda: request.app.state.store.fleet_instances(
            heard_since_ms=heard_since, stale_before_ms=stale_before, target=version,
            environment=environment, kind=kind, status=status, limit=limit, cursor=cursor,
        )
    )
    items = []
    for item in page.items:
        for name in ("first_heard", "last_heard", "version_since"):
            item[f"{name}_at"] = iso_ms(item.pop(f"{name}_ms"))
        items.append(item)
    return {"version": target, "items": items, "next_cursor": page.next_cursor}
