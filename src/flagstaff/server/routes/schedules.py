"""Scheduled changes: create, list, inspect, move or change, cancel (docs/governance.md).

A schedule changes one flag in one environment at an instant: ``enable``, ``disable``,
``rollout`` (new weights for the fallthrough's rollout, or a rule's with ``rule``) or ``patch``
(a JSON merge patch of the environment's configuration).  The process's scheduler applies it
when due, exactly once across replicas, as an audited write by "scheduled by <author>".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from flagstaff.errors import Invalid
from flagstaff.server.auth import Editor, Viewer
from flagstaff.server.deps import get_store
from flagstaff.server.errors import error_responses
from flagstaff.store import Store

router = APIRouter(prefix="/schedules", tags=["schedules"])

StoreDep = Annotated[Store, Depends(get_store)]
ScheduleId = Annotated[int, Path(ge=1, le=2**53, description="the schedule id")]
READ = error_responses(400, 401, 403, 404)
WRITE = error_responses(400, 401, 403, 404, 409, 413)
EXAMPLE = {"flag": "new-checkout", "environment": "production", "at": "2030-01-01T09:00:00Z",
           "action": "rollout", "variations": [{"variant": "true", "weight": 25},
                                                {"variant": "false", "weight": 75}]}


def parse_time(value: Any, field: str = "at") -> datetime:
    """An ISO-8601 time with a timezone (``Z`` or an offset), else 400 naming the field."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return moment
    raise Invalid(
        f"{field} must be an ISO-8601 time with a timezone, e.g. 2030-01-01T09:00:00Z",
        details={"field": field},
    )


def _str(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise Invalid(f"{field} is required (a key)", details={"field": field})
    return value


def wake(request: Request) -> None:
    workers = getattr(request.app.state, "governance", None)
    if workers is not None:
        workers.schedules_changed()


@router.post("", status_code=201, summary="Schedule a change to one flag in one environment",
             responses=WRITE)
def create_schedule(
    request: Request, principal: Editor, store: StoreDep,
    body: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
) -> dict[str, Any]:
    record = store.create_schedule(
        flag=_str(body, "flag"), environment=_str(body, "environment"),
        at=parse_time(body.get("at")), action=body.get("action"), body=body,
        description=body.get("description"), actor=principal.actor,
    )
    wake(request)
    return record.to_dict()


@router.get("", summary="List schedules by due time", responses=READ)
def list_schedules(
    _: Viewer, store: StoreDep,
    status: Annotated[str | None, Query(pattern="^(pending|applied|failed|cancelled)$")] = None,
    flag: Annotated[str | None, Query(max_length=128)] = None,
    environment: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    page = store.list_schedules(
        status=status, flag=flag, environment=environment, limit=limit, cursor=cursor
    )
    return {"items": [r.to_dict() for r in page.items], "next_cursor": page.next_cursor}


@router.get("/{schedule_id}", summary="Get a schedule (with its outcome once run)",
            responses=READ)
def get_schedule(schedule_id: ScheduleId, _: Viewer, store: StoreDep) -> dict[str, Any]:
    return store.get_schedule(schedule_id=schedule_id).to_dict()


@router.patch("/{schedule_id}", summary="Move a pending schedule or change what it does",
              responses=WRITE)
def update_schedule(
    request: Request, schedule_id: ScheduleId, principal: Editor, store: StoreDep,
    body: Annotated[dict[str, Any], Body(examples=[{"at": "2030-01-01T10:00:00Z"}])],
) -> dict[str, Any]:
    changes = dict(body)
    if "at" in changes:
        changes["at"] = parse_time(changes["at"])
    record = store.update_schedule(schedule_id=schedule_id, body=changes, actor=principal.actor)
    wake(request)
    return record.to_dict()


@router.delete("/{schedule_id}", summary="Cancel a pending schedule", responses=WRITE)
def cancel_schedule(schedule_id: ScheduleId, principal: Editor, store: StoreDep) -> dict[str, Any]:
    return store.cancel_schedule(schedule_id=schedule_id, actor=principal.actor).to_dict()
