"""Stale flags in the console's flag list: the state filter offers ``stale``, and
each stale flag shows why and when it was last evaluated, the same verdict as
``GET /flags?state=stale`` (thresholds from the settings; the clock injected through
``app.state.clock`` as in ``tests/server/test_experiments.py``).  HTTP tests on SQLite and
PostgreSQL, then the page in Chromium (with the documentation screenshot)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flagstaff.server.console import views
from flagstaff.store import Store
from flagstaff.store.records import iso
from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in
from tests.console.conftest import ADMIN_SECRET, flag
from tests.console.conftest import sign_in as console_sign_in

# An hour over 60 days after the flags are created, so their age is a whole 60 days.
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60, hours=1)


def _counts(store: Store, key: str, variants: tuple[str, ...], days_ago: int, *,
            now: datetime = NOW) -> None:
    at = (now - timedelta(days=days_ago)).isoformat()
    store.ingest_evaluation_counts(
        environment="production", batch_id=f"{key}-{days_ago}", window_start=at, window_end=at,
        counts=[{"flag_key": key, "variant": v, "count": 3} for v in variants],
    )


def _kind(key: str, kind: str, tags: list[str]) -> dict[str, Any]:
    return {**flag(key, production=True, staging=False), "kind": kind, "tags": tags}


@pytest.fixture
def flags(app: FastAPI, store: Store) -> None:
    """Flags created now, judged 60 days later (``app.state.clock``)."""
    for key, kind, tags in [
        ("old-banner", "release", ["ui"]),     # last evaluated 45 days ago
        ("dark-mode", "release", ["ui"]),      # only "true" for 50 days
        ("fresh-idea", "release", ["ideas"]),  # never evaluated, 60 days old
        ("busy", "release", ["ui"]),           # two variants lately: alive
        ("off-switch", "kill-switch", []),     # kill switches are never stale
    ]:
        store.create_flag(definition=_kind(key, kind, tags), actor="test")
    _counts(store, "old-banner", ("true",), 45)
    for days_ago in (50, 30, 10, 1):
        _counts(store, "dark-mode", ("true",), days_ago)
        _counts(store, "busy", ("true", "false"), days_ago)
    _counts(store, "off-switch", ("true",), 55)
    app.state.clock = lambda: NOW


def _rows(page: str) -> dict[str, str]:
    """Each flag row's HTML by key."""
    return dict(re.findall(r'<tr id="row-([^"]+)"[^>]*>(.*?)</tr>', page, flags=re.S))


def _stale_cell(row: str) -> tuple[str, str, str | None]:
    """(reason, last-evaluated text, its datetime attribute) as shown in the row."""
    reason = re.search(r'<span class="stale-reason">([^<]*)</span>', row)
    last = re.search(r'<span class="last-evaluated">(.*?)</span>', row, flags=re.S)
    assert reason is not None and last is not None, row
    stamp = re.search(r'<time datetime="([^"]+)">([^<]+)</time>', last.group(1))
    if stamp is None:
        return html.unescape(reason.group(1)), last.group(1), None
    return html.unescape(reason.group(1)), stamp.group(2), stamp.group(1)


def test_the_flag_list_offers_the_stale_filter_and_shows_why_and_when(
    client: TestClient, flags: None
) -> None:
    console_sign_in(client, ADMIN_SECRET)
    listing = client.get("/ui/flags").text
    assert re.search(r'<option value="stale"\s*>stale</option>', listing)
    assert "Why stale" not in listing  # the verdict column belongs to the stale view

    page = client.get("/ui/flags?state=stale")
    assert page.status_code == 200
    assert re.search(r'<option value="stale" selected>', page.text)
    assert '<th scope="col">Why stale</th>' in page.text
    rows = _rows(page.text)
    assert list(rows) == ["dark-mode", "fresh-idea", "old-banner"]

    assert _stale_cell(rows["old-banner"]) == (
        "not evaluated for 45 days",
        (NOW - timedelta(days=45)).strftime("%Y-%m-%d %H:%M UTC"),
        iso(NOW - timedelta(days=45)),
    )
    reason, shown, stamp = _stale_cell(rows["dark-mode"])
    assert reason == "served a single variant to everyone for 40 days"
    assert stamp == iso(NOW - timedelta(days=1))
    assert shown == (NOW - timedelta(days=1)).strftime("%Y-%m-%d %H:%M UTC")
    assert "Serves only <code>true</code>" in rows["dark-mode"]
    assert _stale_cell(rows["fresh-idea"]) == (
        "not evaluated for 60 days (never evaluated)", "never", None)
    # The status per environment is still there.
    assert 'title="production: on"' in rows["old-banner"]
    assert 'title="staging: off"' in rows["old-banner"]


def test_the_console_lists_what_the_api_lists(
    app: FastAPI, client: TestClient, flags: None
) -> None:
    console_sign_in(client, ADMIN_SECRET)
    api = client.get("/flags", params={"state": "stale"},
                     headers={"Authorization": f"Bearer {ADMIN_SECRET}"}).json()["items"]
    shown = _rows(client.get("/ui/flags?state=stale").text)
    assert [f["key"] for f in api] == list(shown)
    for item in api:
        assert _stale_cell(shown[item["key"]])[0] == item["stale_reason"]
        assert _stale_cell(shown[item["key"]])[2] == item["last_evaluated_at"]

    # The thresholds are the server's settings, as for the API.
    app.state.settings.stale_release_days = 100
    empty = client.get("/ui/flags?state=stale").text
    assert _rows(empty) == {} and "No stale flags match." in empty


def test_search_tag_status_and_paging_in_the_stale_view(
    client: TestClient, flags: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    console_sign_in(client, ADMIN_SECRET)
    assert list(_rows(client.get("/ui/flags?state=stale&tag=ui").text)) == [
        "dark-mode", "old-banner"]
    assert list(_rows(client.get("/ui/flags?state=stale&q=DARK").text)) == ["dark-mode"]
    assert _rows(client.get("/ui/flags?state=stale&q=busy").text) == {}
    assert _rows(client.get("/ui/flags?state=stale&environment=production&status=off").text) == {}

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    first = client.get("/ui/flags?state=stale").text
    assert list(_rows(first)) == ["dark-mode", "fresh-idea"]
    link = re.search(r'<a href="(\?[^"]+)">Next page', first)
    assert link is not None and "state=stale" in link.group(1)
    second = client.get("/ui/flags" + html.unescape(link.group(1))).text
    assert list(_rows(second)) == ["old-banner"]
    assert "Next page" not in second


def test_live_row_refresh_keeps_the_verdict_in_the_stale_view(
    client: TestClient, flags: None
) -> None:
    console_sign_in(client, ADMIN_SECRET)
    row = client.get("/ui/fragments/flag-row/old-banner?environment=&state=stale")
    assert row.status_code == 200
    assert _stale_cell(row.text)[0] == "not evaluated for 45 days"
    assert row.text.count("<td") == 3 + 1 + 2 + 1  # kind, tags, verdict, two environments, updated
    # A flag that is not stale is not added to the stale list by a live update.
    assert client.get("/ui/fragments/flag-row/busy?state=stale").status_code == 404
    plain = client.get("/ui/fragments/flag-row/old-banner")
    assert plain.status_code == 200 and "stale-reason" not in plain.text


# -- in the browser --------------------------------------------------------------------------

Page = Any


@needs_chromium
@pytest.mark.slow
def test_stale_flags_in_the_browser(
    server: Server, new_page: Callable[[], Page], shots: Shots
) -> None:
    """The server runs on the wall clock, so usage is reported in the past instead."""
    from playwright.sync_api import expect

    now = datetime.now(UTC)
    for key, kind, tags in [
        ("legacy-banner", "release", ["web"]),
        ("checkout-v2", "release", ["checkout", "web"]),
        ("maintenance-mode", "operational", ["ops"]),
        ("search-ranking", "experiment", ["search"]),
    ]:
        server.api("POST", "/flags", json=_kind(key, kind, tags))
    sdk = server.api("POST", "/tokens", json={
        "name": "stale-sdk", "kind": "sdk-server", "environment": "production"})["secret"]

    def report(key: str, variants: tuple[str, ...], days_ago: int) -> None:
        at = (now - timedelta(days=days_ago)).isoformat()
        server.api("POST", "/evaluation-counts", token=sdk, json={
            "batch_id": f"{key}-{days_ago}", "window_start": at, "window_end": at,
            "counts": [{"flag_key": key, "variant": v, "count": 5} for v in variants]})

    report("legacy-banner", ("true",), 52)
    for days_ago in (48, 30, 12, 1):
        report("checkout-v2", ("true",), days_ago)
        report("search-ranking", ("true", "false"), days_ago)
    report("maintenance-mode", ("false",), 9)

    page = new_page()
    sign_in(page, ADMIN)
    page.get_by_label("State").select_option("stale")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/ui/flags?*state=stale*")
    table = page.locator("#flag-table")
    expect(table.get_by_role("columnheader", name="Why stale")).to_be_visible()
    legacy = page.locator("#row-legacy-banner")
    expect(legacy).to_contain_text("not evaluated for 52 days")
    expect(legacy.locator(".last-evaluated")).to_have_text(
        (now - timedelta(days=52)).strftime("%Y-%m-%d %H:%M UTC"))
    expect(page.locator("#row-checkout-v2")).to_contain_text(
        "served a single variant to everyone for 40 days")
    expect(page.locator("#row-checkout-v2")).to_contain_text("Serves only true")
    expect(page.locator("#row-maintenance-mode")).to_contain_text("not evaluated for 9 days")
    expect(page.locator("#row-search-ranking")).to_have_count(0)
    shots.take(page, "console-stale")

    # A live update from elsewhere refreshes the row and keeps its verdict.
    server.api("PATCH", "/flags/legacy-banner/environments/production", json={"enabled": False})
    expect(legacy.locator('[title="production: off"]')).to_be_visible()
    expect(page.locator("#row-legacy-banner .stale-reason")).to_have_text("not evaluated for 52 days")
