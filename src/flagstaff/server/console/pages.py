"""The console's HTML pages (server-rendered; scripts only enhance them) and page fragments.

Every page needs a signed-in management token; read pages are open to every role, and the
templates show edit controls only to roles that may use them (the JSON API refuses the rest).
Handlers read through the store and never hold queries.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request, Response

from flagstaff.engine.conditions import OPERATORS
from flagstaff.errors import Invalid, NotFound
from flagstaff.server.console import fleet, views
from flagstaff.server.console.rendering import render
from flagstaff.server.console.session import ConsoleRoute, current, require
from flagstaff.server.deps import get_store
from flagstaff.server.routes.lifecycle import find_stale
from flagstaff.store import Store
from flagstaff.store.flag_order import parse_order

router = APIRouter(route_class=ConsoleRoute)

StoreDep = Annotated[Store, Depends(get_store)]
# The audit log page shows this many records, newest first, with a link to the next page.
AUDIT_PAGE = 50
Text = Annotated[str | None, Query(max_length=200)]


@router.get("/")
@router.get("/flags")
def flag_list(
    request: Request, store: StoreDep, q: Text = None, tag: Text = None,
    state: Annotated[str, Query(pattern="^(active|archived|stale)$")] = "active",
    environment: Text = None,
    status: Annotated[str | None, Query(pattern="^(on|off|)$")] = None,
    cursor: Annotated[str | None, Query(max_length=400)] = None, sort: Text = None,
) -> Response:
    current(request)
    order = parse_order(sort or None)
    envs = views.environment_keys(request, store)
    shown = [environment] if environment in envs else envs
    stale_view = state == "stale" and views.stale_supported(store)
    flags: list[dict[str, Any]]
    if stale_view:
        # Stale is judged from usage by the lifecycle rules, not stored: the same list as
        # ``GET /flags?state=stale`` (thresholds from the settings, the app's clock).
        flags, next_cursor = views.stale_page(
            find_stale(request), tag=tag or None, q=q or None, cursor=cursor, sort=order.text
        )
    else:
        page = views.list_flags(
            store, state=state, tag=tag or None, q=q or None, cursor=cursor, sort=order.text
        )
        flags, next_cursor = [record.to_dict() for record in page.items], page.next_cursor
    rows = [views.flag_row(flag, shown) for flag in flags]
    if status and environment in envs:
        rows = [row for row in rows if row["status"][environment] == (status == "on")]
    filters = {"q": q or "", "tag": tag or "", "state": state,
               "environment": environment or "", "status": status or ""}
    return render(request, "flags.html", {
        "rows": rows, "environments": envs, "shown": shown, "filters": filters,
        "next": None if next_cursor is None
        else urlencode({**filters, "sort": order.text, "cursor": next_cursor}),
        "sort": order.text, "headers": views.sort_headers(filters, order, shown),
        "sort_choices": views.sort_choices(envs),
        "stale_supported": views.stale_supported(store), "stale_view": stale_view,
    })


@router.get("/fragments/flag-row/{key}")
def flag_row_fragment(
    request: Request, key: str, store: StoreDep, environment: Text = None,
    state: Annotated[str | None, Query(pattern="^(active|archived|stale|)$")] = None,
) -> Response:
    current(request)
    envs = views.environment_keys(request, store)
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
    envs = views.environment_keys(request, store)
    return render(request, "_flag_status.html", {
        "flag": flag, "environments": envs,
        "notes": views.switch_notes(store, key=key, flag=flag, environments=envs),
    })


@router.get("/flags/{key}")
def flag_detail(request: Request, key: str, store: StoreDep, env: Text = None) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    envs = views.environment_keys(request, store)
    selected = env if env in envs else ("production" if "production" in envs else envs[0])
    return render(request, "flag.html", {
        "flag": flag, "environments": envs, "env": selected,
        "config": flag["environments"].get(selected, {}),
        "operators": list(OPERATORS),
        "segments": views.segment_keys(store),
        "flag_variants": views.flag_variants(store, exclude=key),
        "experiments": views.experiments_supported(store),
        "reach": fleet.flag_reach(request, store, key, envs),
        "notes": views.switch_notes(store, key=key, flag=flag, environments=envs),
        "usage": views.usage(store, key=key),
        "code": views.code_references(store, key=key),
        "running": [
            (e, flag["environments"][e]["experiment"]) for e in envs
            if ((flag["environments"].get(e) or {}).get("experiment") or {}).get("status")
            in ("running", "paused")
        ],
    })


@router.get("/flags/{key}/history")
def flag_history(request: Request, key: str, store: StoreDep) -> Response:
    current(request)
    flag = store.get_flag(key=key).to_dict()
    records = views.audit_records(store, target_kind="flag", target_key=key)
    fleet.annotate(request, records)
    views.annotate_reverts(flag, records)
    return render(request, "history.html", {"flag": flag, "records": list(reversed(records))})


@router.get("/audit")
def audit(
    request: Request, store: StoreDep, key: Text = None, actor: Text = None, action: Text = None,
    environment: Text = None, since: Text = None, until: Text = None, cursor: Text = None,
) -> Response:
    """Newest first, a page at a time; ``since``/``until`` are days (UTC, both inclusive) as
    the form's date inputs send them, empty when not set."""
    current(request)
    first_day, last_day = _day(since, "since"), _day(until, "until")
    page = store.list_audit(
        target_key=key or None, actor=actor or None, action=action or None,
        environment=environment or None, newest_first=True, limit=AUDIT_PAGE, cursor=cursor or None,
        since=None if first_day is None else datetime.combine(first_day, time(), UTC),
        until=None if last_day is None else datetime.combine(last_day + timedelta(days=1), time(), UTC),
    )
    records = [views.readable(r.to_dict()) for r in page.items]
    filters = {"key": key or "", "actor": actor or "", "action": action or "",
               "environment": environment or "", "since": since or "", "until": until or ""}
    return render(request, "audit.html", {
        "records": fleet.annotate(request, records), "filters": filters,
        "environments": views.environment_keys(request, store),
        "next": None if page.next_cursor is None else urlencode({**filters, "cursor": page.next_cursor}),
        "first_page": cursor is None, "first": urlencode(filters), "page_size": AUDIT_PAGE,
    })


def _day(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{field} must be a day such as 2026-12-01", details={"field": field}) from None


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
    order = views.environment_keys(request, store)
    envs = sorted((e.to_dict() for e in store.list_environments()), key=lambda e: order.index(e["key"]))
    return render(request, "environments.html", {"environments": envs})


@router.get("/tokens")
def token_list(request: Request, store: StoreDep) -> Response:
    require(current(request), "admin")
    tokens = [t.to_dict() for t in store.list_tokens()]
    envs = views.environment_keys(request, store)
    return render(request, "tokens.html", {"tokens": tokens, "environments": envs})


@router.get("/sandbox")
def sandbox(request: Request, store: StoreDep) -> Response:
    current(request)
    envs = views.environment_keys(request, store)
    example: dict[str, Any] = {"targeting_key": "user-1", "country": "DE", "plan": "pro"}
    return render(request, "sandbox.html", {"environments": envs, "example": example})
