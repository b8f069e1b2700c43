"""End-to-end tests in a real browser (Debian's Chromium through Playwright).

A server subprocess on SQLite; each test opens fresh browser contexts (separate sessions).
Covers sign-in, creating a flag, editing rules with a validation error shown by the field,
toggling, the kill switch's confirmation, the audit diff, a live update from a second
session, the 412 conflict panel, keyboard use and screenshots.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in, wait_live

pytestmark = [needs_chromium, pytest.mark.slow]

Page = Any
NewPage = Callable[[], Page]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_sign_in_create_flag_edit_rules_toggle_kill_and_read_the_audit_diff(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    page = new_page()
    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    shots.take(page, "console-sign-in")
    page.get_by_label("Management token").fill("fsm_wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#token-error")).to_contain_text("Unknown or revoked token")
    sign_in(page, ADMIN)

    # Create a flag in the dialog.
    page.get_by_role("button", name="New flag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Key").fill("new-checkout")
    dialog.get_by_label("Name").fill("New checkout")
    dialog.get_by_label("Tags (comma-separated)").fill("checkout, web")
    dialog.get_by_role("button", name="Create flag").click()
    page.wait_for_url("**/ui/flags/new-checkout")
    expect(page.get_by_role("heading", name="New checkout")).to_be_visible()

    # Rules editor: a rule with a condition and a rollout whose weights do not add up.
    editor = page.locator("#editor")
    editor.get_by_role("button", name="+ Add rule").click()
    rule = editor.locator("[data-rule='0']")
    rule.get_by_label("Attribute").fill("country")
    rule.get_by_label("Operator").select_option("in")
    rule.get_by_label("Values (one per line)").fill("DE\nAT")
    rule.get_by_label("Serve").select_option("rollout")
    rule.get_by_label("true %").fill("60")
    rule.get_by_label("false %").fill("30")
    expect(rule.locator(".hint")).to_contain_text("must add up to 100")
    editor.get_by_role("button", name="Save production").click()
    error = rule.locator(".field-error")
    expect(error).to_contain_text("weights sum to 90, not 100")
    shots.take(page, "console-validation-error", full_page=True)
    rule.get_by_label("false %").fill("40")
    expect(rule.locator(".hint")).to_contain_text("Total 100 %")
    editor.get_by_role("button", name="+ Add rule").click()
    second = editor.locator("[data-rule='1']")
    second.get_by_label("Attribute").fill("plan")
    second.get_by_label("Values (one per line)").fill("enterprise")
    second.get_by_label("Rule id").fill("enterprise")
    second.get_by_role("button", name="Move rule 2 up").click()
    expect(editor.locator("[data-rule='0']").get_by_label("Rule id")).to_have_value("enterprise")
    editor.get_by_role("button", name="Save production").click()
    expect(editor.locator(".save-status")).to_have_text("Saved (version 2).")
    saved = server.api("GET", "/flags/new-checkout")["environments"]["production"]
    assert [r["id"] for r in saved["rules"]] == ["enterprise", "rule-2"]
    assert saved["rules"][1]["conditions"][0] == {
        "attribute": "country", "operator": "in", "values": ["DE", "AT"], "negate": False}
    weights = {v["variant"]: v["weight"] for v in saved["rules"][1]["serve"]["rollout"]["variations"]}
    assert weights == {"true": 60, "false": 40}
    shots.take(page, "console-flag-detail", full_page=True)

    # Toggle on, then kill with confirmation (cancel first).
    switch = page.get_by_role("switch", name="new-checkout in production")
    switch.click()
    expect(page.get_by_role("switch", name="new-checkout in production")).to_have_attribute(
        "aria-checked", "true")
    assert server.api("GET", "/flags/new-checkout")["environments"]["production"]["enabled"]
    page.locator("[data-env-row='production']").get_by_role("button", name="Kill").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("Kill new-checkout in production?")
    confirm.get_by_label("Reason (kept in the audit log)").fill("checkout errors after deploy 4812")
    shots.take(page, "console-kill-confirm")
    confirm.get_by_role("button", name="Cancel").click()
    assert server.api("GET", "/flags/new-checkout")["environments"]["production"]["enabled"]
    page.locator("[data-env-row='production']").get_by_role("button", name="Kill").click()
    # the reason box starts empty each time the dialog opens
    expect(confirm.get_by_label("Reason (kept in the audit log)")).to_have_value("")
    confirm.get_by_label("Reason (kept in the audit log)").fill("checkout errors after deploy 4812")
    confirm.get_by_role("button", name="Kill in production").click()
    expect(page.get_by_role("switch", name="new-checkout in production")).to_have_attribute(
        "aria-checked", "false")
    assert not server.api("GET", "/flags/new-checkout")["environments"]["production"]["enabled"]
    # killed reads apart from off: who, when and why, right by the switch
    note = page.locator("[data-switch-note='production']")
    expect(note).to_contain_text("Killed")
    expect(note).to_contain_text("checkout errors after deploy 4812")
    shots.take(page, "console-killed", full_page=False)

    # The audit history shows the kill as a readable diff.
    page.get_by_role("link", name="History").click()
    killed = page.locator(".audit-entry").first
    expect(killed).to_contain_text("killed")
    expect(killed).to_contain_text("environments.production.enabled")
    expect(killed.locator("del")).to_have_text("true")
    expect(killed.locator("ins")).to_have_text("false")
    expect(killed).to_contain_text("reason: “checkout errors after deploy 4812”")
    expect(killed.get_by_role("button", name="Revert to this version")).to_have_count(0)  # current
    shots.take(page, "console-history", full_page=True)

    page.goto("/ui/flags")
    expect(page.locator("#row-new-checkout")).to_contain_text("New checkout")
    shots.take(page, "console-flags")


def test_live_update_from_a_second_session_and_the_conflict_panel(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    server.api("POST", "/flags", json={"key": "live-flag", "type": "boolean",
                                        "environments": {"production": {"enabled": False}}})
    watcher, other = new_page(), new_page()
    sign_in(watcher, ADMIN, "/ui/flags")
    sign_in(other, ADMIN, "/ui/flags/live-flag")
    row = watcher.locator("#row-live-flag")
    expect(row.locator("[title='production: off']")).to_be_visible()

    other.get_by_role("switch", name="live-flag in production").click()
    expect(other.get_by_role("switch", name="live-flag in production")).to_have_attribute(
        "aria-checked", "true")
    # The first session's list updates without a reload.
    expect(watcher.locator("#row-live-flag [title='production: on']")).to_be_visible()

    # Now the first session opens the flag; the second changes it again.
    watcher.goto("/ui/flags/live-flag")
    wait_live(watcher)
    other.reload()
    wait_live(other)
    other.get_by_role("switch", name="live-flag in production").click()
    expect(watcher.locator("#changed-elsewhere")).to_contain_text("Someone else changed this flag")
    expect(watcher.get_by_role("switch", name="live-flag in production")).to_have_attribute(
        "aria-checked", "false")

    # Saving from the stale page is refused and shows what changed.
    editor = watcher.locator("#editor")
    editor.get_by_role("button", name="+ Add rule").click()
    editor.get_by_label("Attribute").fill("country")
    editor.get_by_label("Values (one per line)").fill("DE")
    editor.get_by_role("button", name="Save production").click()
    conflict = watcher.locator("#conflict")
    expect(conflict).to_be_visible()
    expect(conflict).to_contain_text("changed since you opened it")
    expect(conflict).to_contain_text("environments.production.enabled")
    expect(conflict).to_contain_text("bootstrap admin")
    shots.take(watcher, "console-conflict", full_page=True)
    assert server.api("GET", "/flags/live-flag")["environments"]["production"]["rules"] == []


def test_keyboard_only_sign_in_toggle_and_kill(server: Server, new_page: NewPage) -> None:
    server.api("POST", "/flags", json={"key": "keys-flag", "type": "boolean",
                                        "environments": {"production": {"enabled": False}}})
    page = new_page()
    page.goto("/ui/flags/keys-flag")
    # The sign-in page focuses the token field; the skip link comes first in tab order.
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("a.skip")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.locator("#token")).to_be_focused()
    page.keyboard.type(ADMIN)
    page.keyboard.press("Enter")
    page.wait_for_url("**/ui/flags/keys-flag")
    wait_live(page)

    switch = page.get_by_role("switch", name="keys-flag in production")
    switch.focus()
    page.keyboard.press("Space")
    expect(page.get_by_role("switch", name="keys-flag in production")).to_have_attribute(
        "aria-checked", "true")
    # Focus stays on the switch after the status section refreshes.
    expect(page.locator("[data-toggle='production']")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("[data-env-row='production']").get_by_role("button", name="Kill")).to_be_focused()
    page.keyboard.press("Enter")
    # The dialog opens with Cancel focused; Escape cancels.
    expect(page.locator("#confirm-dialog .cancel")).to_be_focused()
    page.keyboard.press("Escape")
    assert server.api("GET", "/flags/keys-flag")["environments"]["production"]["enabled"]
    page.locator("[data-env-row='production']").get_by_role("button", name="Kill").focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.locator("#confirm-dialog .confirm-ok")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("switch", name="keys-flag in production")).to_have_attribute(
        "aria-checked", "false")
    # Every input and select on the page has an accessible name.
    unnamed = page.evaluate("""() => Array.from(document.querySelectorAll('input, select, textarea'))
        .filter((el) => el.type !== 'hidden' && !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
        .map((el) => el.outerHTML)""")
    assert unnamed == []


def test_sandbox_tokens_and_viewer_in_the_browser(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    server.api("POST", "/flags", json={
        "key": "sandbox-flag", "type": "boolean", "environments": {"production": {
            "enabled": True, "rules": [{"id": "de", "conditions": [
                {"attribute": "country", "operator": "equals", "values": ["DE"]}],
                "serve": {"variant": "true"}}]}}})
    page = new_page()
    sign_in(page, ADMIN, "/ui/sandbox")
    page.get_by_label("Context (JSON object)").fill('{"targeting_key": "u1", "country": "DE"}')
    page.get_by_role("button", name="Evaluate").click()
    row = page.locator("#sandbox-results tr", has_text="sandbox-flag")
    expect(row).to_contain_text("RULE_MATCH")
    expect(row).to_contain_text("(de)")
    shots.take(page, "console-sandbox", full_page=True)
    page.get_by_label("Context (JSON object)").fill("{nope")
    page.get_by_role("button", name="Evaluate").click()
    expect(page.locator(".field-error")).to_contain_text("not valid JSON")

    page.goto("/ui/tokens")
    page.get_by_label("Name").fill("read-only person")
    page.get_by_label("Role (management)").select_option("viewer")
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_label("Secret")).to_have_value(re.compile(r"^fsm_"))
    secret = page.get_by_label("Secret").input_value()
    page.get_by_role("link", name="Done").click()
    assert secret not in page.content()

    viewer = new_page()
    sign_in(viewer, secret, "/ui/flags/sandbox-flag")
    expect(viewer.locator(".role")).to_have_text("viewer")
    assert viewer.get_by_role("switch").count() == 0
    assert viewer.locator("#editor").count() == 0
    expect(viewer.locator(".readonly")).to_contain_text("country")


def test_make_a_flag_available_to_browsers(server: Server, new_page: NewPage, shots: Shots) -> None:
    server.api("POST", "/flags", json={"key": "page-flag", "type": "boolean"})
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/page-flag")
    expect(page.locator("#client-side-status")).to_contain_text("Server-side only")
    page.get_by_role("button", name="Make available to browsers").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("Any page with the environment's client-side key")
    confirm.get_by_role("button", name="Make available").click()
    expect(page.locator("#client-side-status")).to_contain_text("Available to client-side SDK keys")
    flag = server.api("GET", "/flags/page-flag")
    assert flag["client_side"] is True and flag["version"] == 2
    shots.take(page, "console-client-side")
    page.get_by_role("button", name="Hide from browsers").click()
    confirm.get_by_role("button", name="Hide from browsers").click()
    expect(page.locator("#client-side-status")).to_contain_text("Server-side only")
    assert server.api("GET", "/flags/page-flag")["client_side"] is False
