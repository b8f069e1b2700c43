"""The rules editor offers the newer operators and their options (a real browser)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in

# The module's server and browser start inside this one test: give a loaded machine room.
pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.timeout(300)]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_cidr_condition_with_an_ignore_case_neighbour_is_saved_and_evaluates(
    server: Server, new_page: Callable[[], Any], shots: Shots
) -> None:
    server.api("POST", "/flags", json={"key": "office-only", "type": "boolean",
                                        "environments": {"production": {"enabled": True}}})
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/office-only")
    editor = page.locator("#editor")
    editor.get_by_role("button", name="+ Add rule").click()
    rule = editor.locator("[data-rule='0']")
    rule.get_by_label("Attribute").fill("ip")
    rule.get_by_label("Operator").select_option("in_cidr")
    values = rule.get_by_label("Values (one per line)")
    expect(values).to_have_attribute("placeholder", "10.0.0.0/8 or 2001:db8::/32, one per line")
    values.fill("10.0.0.0/8\n2001:db8::/32")
    expect(rule.get_by_label("ignore case")).to_have_count(0)  # not a string operator

    rule.get_by_role("button", name="+ Add condition").click()
    second = rule.locator(".condition").nth(1)
    second.get_by_label("Attribute").fill("email")
    second.get_by_label("Operator").select_option("ends_with")
    second.get_by_label("Values (one per line)").fill("@ACME.com")
    second.get_by_label("ignore case").check()

    # A time condition reads no attribute: the field goes away, a time zone appears.
    rule.get_by_role("button", name="+ Add condition").click()
    third = rule.locator(".condition").nth(2)
    third.get_by_label("Operator").select_option("now_between")
    expect(third.get_by_label("Attribute")).to_be_hidden()
    third.get_by_label("Values (one per line)").fill("2020-01-01T00:00:00/2100-01-01T00:00:00")
    third.get_by_label("Time zone of times without an offset").fill("Europe/Berlin")

    rule.get_by_label("Serve").select_option("v:true")
    editor.get_by_role("button", name="Save production").click()
    expect(page.locator(".save-status")).to_contain_text("Saved (version 2)")
    shots.take(page, "console-operators", full_page=True)

    conditions = server.api("GET", "/flags/office-only")["environments"]["production"]["rules"][0]["conditions"]
    assert conditions == [
        {"attribute": "ip", "operator": "in_cidr", "values": ["10.0.0.0/8", "2001:db8::/32"], "negate": False},
        {"attribute": "email", "operator": "ends_with", "values": ["@ACME.com"], "negate": False,
         "ignore_case": True},
        {"operator": "now_between", "values": ["2020-01-01T00:00:00/2100-01-01T00:00:00"], "negate": False,
         "timezone": "Europe/Berlin"},
    ]
    answer = server.api("POST", "/evaluate", json={
        "flag": "office-only", "environment": "production",
        "context": {"key": "u1", "ip": "::ffff:10.1.2.3", "email": "bob@acme.com"}})
    assert (answer["value"], answer["reason"]) == (True, "RULE_MATCH")
