"""The console's fleet lines: how far each change has reached the SDK instances and relays.

Every audit record whose write produced a change event gets a line ("97 % of 1,240 SDK
instances have it; 3 stale for > 5 min"), judged in the record's environment (a kill or toggle)
or across all environments (any other change).  A flag's page shows the reach of its latest
change per environment, in a fragment its script polls so a kill's convergence is seen live.
One grouped query serves a whole page (``FleetView.snapshot``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from flagstaff.fleet import sentence
from flagstaff.server.console import views
from flagstaff.server.console.rendering import render
from flagstaff.server.console.session import ConsoleRoute, current
from flagstaff.server.deps import get_store
from flagstaff.server.fleet import Fleet, FleetSnapshot
from flagstaff.store import Store

router = APIRouter(route_class=ConsoleRoute)


def _fleet(request: Request) -> Fleet | None:
    return getattr(request.app.state, "fleet", None)


def reach(snap: FleetSnapshot, *, target: int, environments: list[str] | None,
          stale_minutes: float) -> dict[str, Any]:
    sdks = snap.convergence(kind="sdk", target=target, environments=environments)
    relays = snap.convergence(kind="relay", target=target, environments=environments)
    return {
        "text": sentence(sdks, relays, stale_minutes=stale_minutes),
        "complete": sdks.complete and relays.complete,
        "known": bool(sdks.instances or relays.instances),
        "percent": sdks.percent,
    }


def annotate(request: Request, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each audit record with a change event its ``fleet`` line (in place)."""
    fleet = _fleet(request)
    if fleet is None or not any(r.get("event_id") for r in records):
        return records
    try:
        snap = fleet.view.snapshot()
    except Exception:  # the page still renders without the lines when the database hiccups
        return records
    minutes = fleet.view.settings.stale_after_seconds / 60
    for record in records:
        event_id = record.get("event_id")
        if event_id:
            envs = [record["environment"]] if record.get("environment") else None
            record["fleet"] = reach(snap, target=int(event_id), environments=envs,
                                    stale_minutes=minutes)
    return records


def flag_reach(request: Request, store: Store, key: str, environments: list[str]) -> dict[str, Any]:
    """The reach of a flag's latest change in each environment (the flag page's section)."""
    fleet = _fleet(request)
    event_id = store.latest_event_of(target_kind="flag", target_key=key)
    if fleet is None or event_id is None:
        return {"event_id": event_id, "rows": [], "complete": True}
    snap = fleet.view.snapshot()
    minutes = fleet.view.settings.stale_after_seconds / 60
    rows = [{"environment": env, **reach(snap, target=event_id, environments=[env],
                                         stale_minutes=minutes)}
            for env in environments]
    return {"event_id": event_id, "rows": rows,
            "complete": all(r["complete"] for r in rows if r["known"])}


@router.get("/fragments/flag-fleet/{key}")
def flag_fleet_fragment(
    request: Request, key: str, store: Annotated[Store, Depends(get_store)]
) -> Response:
    current(request)
    store.get_flag(key=key)  # 404 for an unknown flag
    envs = views.environment_keys(request, store)
    return render(request, "_flag_fleet.html", {"reach": flag_reach(request, store, key, envs)})
