"""A flag's code references in Chromium: the flag page lists where scanned code names it, and
the archive confirmation warns with those places (with the documentation screenshots)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in

pytestmark = [needs_chromium, pytest.mark.slow]

NewPage = Callable[[], Any]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_code_references_on_the_flag_page_and_in_the_archive_warning(
    server: Server, new_page: NewPage, shots: Shots
) -> None:
    for key in ("old-banner", "quiet-flag"):
        server.api("POST", "/flags", json={"key": key, "name": key.replace("-", " ").title(),
                                           "type": "boolean", "owner": "team-web"})
    page = new_page()
    sign_in(page, ADMIN, "/ui/flags/quiet-flag")
    expect(page.locator("#code-references")).to_contain_text("No code scan has been reported")

    server.api("POST", "/code-references", json={
        "repository": "github.com/acme/shop", "revision": "4f30ee8", "references": [
            {"key": "old-banner", "file": "src/shop/banner.py", "line": 12, "kind": "sdk-call"},
            {"key": "old-banner", "file": "src/shop/flags.py", "line": 3, "kind": "literal"}]})
    server.api("POST", "/code-references", json={
        "repository": "github.com/acme/mobile", "references": [
            {"key": "old-banner", "file": "app/Home.kt", "line": 88, "kind": "sdk-call"}]})

    page.reload()
    expect(page.locator("#code-references")).to_contain_text("None of the 2 scanned repositories")
    page.get_by_role("button", name="Archive").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text("No scanned repository references it")
    expect(confirm).not_to_contain_text("Warning")
    confirm.get_by_role("button", name="Cancel").click()

    page.goto("/ui/flags/old-banner")
    card = page.locator("#code-references")
    expect(card).to_contain_text("Referenced in 3 places in 2 repositories")
    shop = card.locator("[data-repository='github.com/acme/shop']")
    expect(shop).to_contain_text("src/shop/banner.py:12")
    expect(shop).to_contain_text("4f30ee8")
    expect(card.locator("[data-repository='github.com/acme/mobile']")).to_contain_text("app/Home.kt:88")
    card.scroll_into_view_if_needed()
    shots.take(page, "console-code-references")

    page.get_by_role("button", name="Archive").click()
    expect(confirm).to_contain_text("Warning: old-banner is referenced in code: 3 places in 2 repositories")
    expect(confirm).to_contain_text("src/shop/banner.py:12, src/shop/flags.py:3")
    expect(confirm).to_contain_text("app/Home.kt:88")
    shots.take(page, "console-archive-warning")
    confirm.get_by_role("button", name="Cancel").click()
    assert server.api("GET", "/flags/old-banner")["state"] == "active"
    page.get_by_role("button", name="Archive").click()
    confirm.get_by_role("button", name="Archive").click()
    expect(page.locator("h1")).to_contain_text("archived")
    assert server.api("GET", "/flags/old-banner")["state"] == "archived"
