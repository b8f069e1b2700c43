"""The console read by people, in Chromium: sorting the flag list, condition values that all
show, reverting from the history, the audit log's filters and pages, and experiment results
a product manager can read (with the documentation screenshots)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in

pytestmark = [needs_chromium, pytest.mark.slow]

NewPage = Callable[[], Any]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_sort_the_flag_list_over_every_flag_and_see_every_condition_value(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    # More flags than a page (100): the flags each sort brings first sit beyond the first page
    # in key order, so only a sort over every flag can show them there.
    for n in range(104):
        server.api("POST", "/flags", json={"key": f"m-{n:03d}", "name": f"Middle {n:03d}", "type": "boolean",
                                           "kind": "operational", "tags": ["bulk"]})
    for key, name, on in (("z-banana", "Banana", True), ("z-apple", "Apple", False), ("z-cherry", "Cherry", True)):
        server.api("POST", "/flags", json={"key": key, "name": name, "type": "boolean", "tags": ["fruit"],
                                           "environments": {"production": {"enabled": on}}})
    server.api("PATCH", "/flags/z-apple", json={"environments": {"production": {"rules": [
        {"id": "eu", "conditions": [{"attribute": "country", "operator": "in",
                                     "values": ["DE", "AT", "CH"]}], "serve": {"variant": "true"}}]}}})
    page = new_page()
    sign_in(page, ADMIN)
    rows = page.locator("#flag-table tbody tr[data-flag-row]")

    def shown() -> list[str]:
        keys: list[str] = rows.evaluate_all("rs => rs.map(r => r.dataset.flagRow)")
        return keys

    expect(rows.first).to_have_attribute("data-flag-row", "m-000")
    assert len(shown()) == 100 and "z-apple" not in shown()
    expect(page.locator("#flag-table th").first).to_have_attribute("aria-sort", "ascending")

    page.get_by_role("link", name="Sort by Flag (descending)").click()
    expect(page.locator("#flag-table th").first).to_have_attribute("aria-sort", "descending")
    assert shown()[:3] == ["z-cherry", "z-banana", "z-apple"]

    page.get_by_role("link", name="Sort by status in production").click()
    expect(page.locator("th[aria-sort]")).to_have_text("production ▲")
    assert shown()[:2] == ["z-banana", "z-cherry"]  # on first (ties by key), then the rest
    assert "m-103" not in shown()
    shots.take(page, "console-flags-sorted")
    page.get_by_role("link", name="Next page →").click()
    expect(rows.first).to_have_attribute("data-flag-row", "m-098")
    assert shown() == ["m-098", "m-099", "m-100", "m-101", "m-102", "m-103", "z-apple"]  # the rest

    page.goto("/ui/flags")
    page.get_by_label("Order").select_option(label="name (A to Z)")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_have_attribute("data-flag-row", "z-apple")
    assert shown()[:3] == ["z-apple", "z-banana", "z-cherry"]
    page.get_by_role("link", name="Sort by Updated").click()  # newest first
    expect(page.locator("th[aria-sort]")).to_have_text("Updated ▼")
    assert shown()[:2] == ["z-apple", "z-cherry"]  # its rule came last
    page.goto("/ui/flags?sort=colour")
    expect(page.locator("main")).to_contain_text("sort 'colour' is not known")
    page.goto("/ui/flags?tag=fruit&sort=-status:production")
    assert shown() == ["z-apple", "z-banana", "z-cherry"]  # off first
    page.goto("/ui/flags?tag=fruit&sort=-name")
    assert shown() == ["z-cherry", "z-banana", "z-apple"]
    expect(page.locator("#flag-table th").first).to_have_attribute("aria-sort", "descending")

    page.goto("/ui/flags/z-apple?env=production")
    area = page.locator("textarea[data-field$='.values']").first
    expect(area).to_have_value("DE\nAT\nCH")
    # every value is visible: the box is tall enough that nothing scrolls out of sight
    assert area.evaluate("a => a.scrollHeight <= a.clientHeight + 1")
    area.fill("DE\nAT\nCH\nFR\nIT")
    assert area.evaluate("a => a.scrollHeight <= a.clientHeight + 1")


def test_revert_from_the_history_and_filter_the_audit_log(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    server.api("POST", "/flags", json={"key": "rv", "type": "boolean", "description": "first"})
    server.api("PATCH", "/flags/rv", json={"description": "second"})
    server.api("PATCH", "/flags/rv/environments/staging", json={"enabled": True})
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/rv/history")
    first = page.locator(".audit-entry").filter(has_text="created")
    first.get_by_role("button", name="Revert to this version").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("Revert rv to version 1?")
    expect(confirm.get_by_label("Reason (kept in the audit log)")).to_be_hidden()
    # Only the description and a switch differ: no rollout moves anyone, and the dialog says so.
    expect(confirm.locator(".confirm-reassigns")).to_contain_text("None: no rollout serves anyone another variant.")
    confirm.get_by_role("button", name="Revert to version 1").click()
    expect(page.locator(".audit-entry").first).to_contain_text("reverted to version 1")
    flag = server.api("GET", "/flags/rv")
    assert flag["version"] == 4 and flag["description"] == "first"
    assert not flag["environments"].get("staging", {}).get("enabled", False)
    shots.take(page, "console-revert", full_page=True)

    page.goto("/ui/audit")
    page.get_by_label("Target key").fill("rv")
    page.get_by_label("Environment").select_option("staging")
    page.get_by_role("button", name="Filter").click()
    entries = page.locator(".audit-entry")
    expect(entries.first).to_contain_text("staging")
    assert all("rv" in text for text in entries.all_inner_texts())
    today = datetime.now(UTC).date().isoformat()
    page.get_by_label("From", exact=True).fill(today)
    page.get_by_label("To", exact=True).fill(today)
    page.get_by_role("button", name="Filter").click()
    expect(entries.first).to_contain_text("rv")
    page.get_by_label("From", exact=True).fill("2999-01-01")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("ol.audit")).to_contain_text("No records match.")
    page.goto("/ui/audit?key=rv")
    shots.take(page, "console-audit", full_page=False)


def test_the_revert_dialog_shows_the_users_it_reassigns(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    def rollout(on: int) -> dict[str, Any]:
        return {"rollout": {"variations": [{"variant": "true", "weight": on},
                                           {"variant": "false", "weight": 100 - on}]}}

    server.api("POST", "/flags", json={"key": "ramp", "type": "boolean", "environments": {
        "production": {"enabled": True, "fallthrough": rollout(50)},
        "staging": {"enabled": True, "fallthrough": rollout(10)}}})
    server.api("PATCH", "/flags/ramp", json={"environments": {
        "production": {"fallthrough": rollout(80)}, "staging": {"fallthrough": rollout(10)}}})
    server.api("PATCH", "/flags/ramp", json={"description": "ramped to 80 %"})
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/ramp/history")
    # Version 2 has today's rollouts: reverting to it moves nobody.
    page.locator(".audit-entry").filter(has_text="→ version 2").get_by_role(
        "button", name="Revert to this version").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm.locator(".confirm-reassigns")).to_contain_text("None")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_be_hidden()

    page.locator(".audit-entry").filter(has_text="created").get_by_role(
        "button", name="Revert to this version").click()
    expect(confirm).to_contain_text("Revert ramp to version 1?")
    moved = confirm.locator(".confirm-reassigns li")
    # 50 % -> 80 % and back: the buckets 50,000-80,000 change variant, 30 % of production's
    # users; staging's rollout is the same at both versions and is not listed.
    expect(moved).to_have_count(1)
    expect(moved).to_have_text(
        "environments.production.fallthrough moves 30 % of its users to another variant (weights)")
    expect(confirm).to_contain_text("From the rollouts' bucket ranges, not sampled.")
    shots.take(page, "console-revert-confirm")
    confirm.get_by_role("button", name="Revert to version 1").click()

    # The audit record of the revert states the same share the dialog showed.
    newest = page.locator(".audit-entry").first
    expect(newest).to_contain_text("reverted to version 1")
    expect(newest.locator(".diff-reassign")).to_have_text(
        "environments.production.fallthrough moves 30 % of its users to another variant (weights)")
    flag = server.api("GET", "/flags/ramp")
    assert flag["environments"]["production"]["fallthrough"] == rollout(50)


def test_experiment_results_read_by_a_product_manager(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    server.api("POST", "/flags", json={"key": "signup-cta", "name": "Sign-up button", "type": "string",
                                       "variants": {"grey": "grey", "green": "green"}, "off_variant": "grey",
                                       "environments": {"production": {"enabled": True}}})  # fmt: skip
    server.api("PUT", "/experiments/signup-cta", params={"environment": "production"}, json={
        "control": "grey", "primary_metric": "signup", "salt": "cta-1",
        "variations": [{"variant": "grey", "weight": 50}, {"variant": "green", "weight": 50}]})
    server.api("POST", "/experiments/signup-cta/start", params={"environment": "production"})
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/signup-cta/experiment?env=production")
    expect(page.locator("#no-data")).to_contain_text("No data yet")

    key = server.api("POST", "/tokens", json={"name": "pm", "kind": "sdk-server",
                                             "environment": "production"})["secret"]  # fmt: skip
    now = datetime.now(UTC).isoformat()
    exposures = [{"flag_key": "signup-cta", "variant": v, "user_key": f"{v}{i}", "timestamp": now,
                  "reason": "SPLIT", "in_experiment": True} for v in ("grey", "green") for i in range(1500)]
    events = [{"metric": "signup", "user_key": f"{v}{i}", "value": None, "timestamp": now}
              for v, n in (("grey", 150), ("green", 210)) for i in range(n)]
    server.api("POST", "/exposures", token=key, json={"batch_id": str(uuid.uuid4()), "events": exposures})
    server.api("POST", "/track", token=key, json={"batch_id": str(uuid.uuid4()), "events": events})
    page.reload()
    verdict = page.locator("#verdict")
    expect(verdict).to_contain_text("green is better than grey: +4.00 percentage points")
    expect(verdict).to_contain_text("split as configured")
    table = page.locator("#results-table")
    expect(table).to_contain_text("+4.00 pp")
    expect(table).to_contain_text("95 % confidence interval")
    expect(page.locator("main")).not_to_contain_text("Adjusted p")
    # no text of the interval chart (numbers, variant, axis labels) lies on its zero line
    ci_chart = page.locator("svg.chart").nth(1)
    zero = ci_chart.locator("line[stroke-dasharray]").first.bounding_box()
    assert zero is not None
    texts = ci_chart.locator("text")
    assert texts.count() >= 5
    for n in range(texts.count()):
        box = texts.nth(n).bounding_box()
        assert box is not None
        assert not _overlap(box, zero), texts.nth(n).text_content()
    expect(ci_chart).to_contain_text("0 %")
    # both exposure series show though they are equal (1,500 each): own shapes, side by side
    series = page.locator("svg.chart").first.locator("g.series")
    assert series.count() == 2
    shapes = {series.nth(n).get_attribute("data-shape") for n in range(2)}
    assert len(shapes) == 2
    for n in range(2):  # neither marker hides the other: each is the topmost at its centre
        marker = series.nth(n).locator("path.marker").first
        assert marker.evaluate(
            "m => { const b = m.getBoundingClientRect();"
            " return document.elementFromPoint(b.x + b.width / 2, b.y + b.height / 2) === m; }"
        )
    legend = page.locator("ul.legend")
    expect(legend).to_contain_text("green")
    expect(legend).to_contain_text("grey")
    shots.take(page, "console-experiment", full_page=True)

    page.goto("/ui/flags/signup-cta")
    expect(page.locator("[data-experiment-env='production']")).to_contain_text("running")


def _overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])
