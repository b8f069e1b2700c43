"""The console's HTML pages (server-rendered; scripts only enhance them) and page fragments.

Every page needs a signed-in management token; read pages are open to every role, and the
templates show edit controls only to roles that may use them (the JSON API refuses the rest).
Handlers read through the store and never hold queries.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from flagstaff.engine.conditions import OPERATORS
from flagstaff.errors import NotFound
from flagstaff.server.console import views
from flagstaff.server.console.rendering import render
from flagstaff.server.console.session import ConsoleRoute, current, require
from flagstaff.server.deps import get_store
from flagstaff.server.routes.lifecycle import find_stale
from flagstaff.store import Store

router = APIRouter(route_class=ConsoleRoute)

StoreDep = Annotated[Store, Depends(get_store)]
# The audit log pages oldest first; the page shows the newest of the last AUDIT_SCAN records.
AUDIT_SCAN = 2000
AUDIT_SHOWN = 200
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/")
@router.get("/flags")
def flag_list(
    request: Request, store: StoreDep, q: Text = None, tag: Text = None,
    state: Annotated[str, Query(pattern="^(active|archived|stale)$")] = "active",
    environment: Text = None,
    status: Annotated[str | None, Query(pattern="^(on|off|)$")] = None,
    cursor: Text = None,
) -> Response:
    current(request)
    envs = [e.key for e in store.list_environments()]
    shown = [environment] if environment in envs else envs
    stale_view = state == "stale" and views.stale_supported(store)
    flags: list[dict[str, Any]]
    if stale_view:
        # Stale is judged from usage by the lifecycle rules, not stored: the same list as
        # ``GET /flags?state=stale`` (thresholds from the settings, the app's clock).
        flags, next_cursor = views.stale_page(
            find_stale(request), tag=tag or None, q=q or None, cursor=cursor
        )
    else:
        page = views.list_flags(store, state=state, tag=tag or None, q=q or None, cursor=cursor)
        flags, next_cursor = [record.to_dict() for record in page.items], page.next_cursor
    rows = [views.flag_row(flag, shown) for flag in flags]
    if status and environment in envs:
        rows = [row for row in rows if row["status"][environment] == (status == "on")]
    return render(request, "flags.html", {
        "rows": rows, "environments": envs, "shown": shown, "next_cursor": next_cursor,
        "filters": {"q": q or "", "tag": tag or "", "state": state,
                    "environment": environment or "", "status": status or ""},
        "stale_supported": views.stale_supported(store), "stale_view": stale_view,
    })


@router.get("/fragments/flag-row/{key}")
def flag_row_fragment(
    request: Request, key: str, store: StoreDep, environment: Text = None,
    state: Annotated[str | None, Query(pattern="^(active|archived|stale|)$")] = None,
) -> Response:
    current(request)
    envs = [e.key for e in store.list_environments()]
    shown = [environment] if environment in envs else envs
    flag = store.get_flag(key=key).to_dict()
    stale_view = state == "stale" and views.stale_supported(store)
    if stale_view:
        # A row of the stale list, with its verdict; a flag that is not stale has none (404:
        # the page leaves its list alone rather than add a row that does not belong).
        verdict = next((f for f in find_stale(request) if f.record.key == key), None)
        if verdict is None:
            raise NotFound(f"flag {key!r} is not stale")
        flag = verdict.to_dict()
    row = views.flag_row(flag, shown)
    return render(request, "_flag_row.html", {"row": row, "shown": shown, "stale_view": stale_view})


@router.get("/fragments/flag-status/{key}")
def flag_status_fragment(request: Request, key: str, store: StoreDep) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    envs = [e.key for e in store.list_environments()]
    return render(request, "_flag_status.html", {"flag": flag, "environments": envs})


@router.get("/flags/{key}")
def flag_detail(request: Request, key: str, store: StoreDep, env: Text = None) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    envs = [e.key for e in store.list_environments()]
    selected = env if env in envs else ("production" if "production" in envs else envs[0])
    return render(request, "flag.html", {
        "flag": flag, "environments": envs, "env": selected,
        "config": flag["environments"].get(selected, {}),
        "operators": list(OPERATORS),
        "segments": views.segment_keys(store),
        "flag_variants": views.flag_variants(store, exclude=key),
        "experiments": views.experiments_supported(store),
    })


@router.get("/flags/{key}/history")
def flag_history(request: Request, key: str, store: StoreDep) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    records = views.audit_records(store, target_kind="flag", target_key=key)
    return render(request, "history.html", {"flag": flag, "records": list(reversed(records))})


@router.get("/audit")
def audit(
    request: Request, store: StoreDep, key: Text = None, actor: Text = None, action: Text = None
) -> Response:
    current(request)
    records = views.audit_records(store, target_key=key or None, actor=actor or None,
                                  action=action or None, limit=AUDIT_SCAN)
    return render(request, "audit.html", {
        "records": list(reversed(records[-AUDIT_SHOWN:])),
        "filters": {"key": key or "", "actor": actor or "", "action": action or ""},
    })


@router.get("/segments")
def segment_list(request: Request, store: StoreDep) -> Response:
    current(request)
    segments = [s.to_dict() for s in views.all_segments(store)]
    return render(request, "segments.html", {"segments": segments})


@router.get("/segments/{key}")
def segment_detail(request: Request, key: str, store: StoreDep) -> Response:
    current(request)
    segment = store.get_segment(key=key).to_dict()
    return render(request, "segment.html", {
        "segment": segment, "operators": list(OPERATORS), "segments": views.segment_keys(store),
    })


@router.get("/environments")
def environment_list(request: Request, store: StoreDep) -> Response:
    current(request)
    envs = [e.to_dict() for e in store.list_environments()]
    return render(request, "environments.html", {"environments": envs})


@router.get("/tokens")
def token_list(request: Request, store: StoreDep) -> Response:
    require(current(request), "admin")
    tokens = [t.to_dict() for t in store.list_tokens()]
    envs = [e.key for e in store.list_environments()]
    return render(request, "tokens.html", {"tokens": tokens, "environments": envs})


@router.get("/sandbox")
def sandbox(request: Request, store: StoreDep) -> Response:
    current(request)
    envs = [e.key for e in store.list_environments()]
    example: dict[str, Any] = {"targeting_key": "user-1", "country": "DE", "plan": "pro"}
    return render(request, "sandbox.html", {"environments": envs, "example": example})
