"""/docs (Swagger UI) and /redoc render in Chromium with every non-local request blocked:
their scripts and styles come from the server, so they work on a machine without internet."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.console.browser import Server, Shots, needs_chromium

pytestmark = [needs_chromium, pytest.mark.slow]


def _offline(page: Any) -> list[str]:
    blocked: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            request_route.continue_()
        else:
            blocked.append(url)
            request_route.abort("internetdisconnected")

    page.route("**/*", route)
    return blocked


def test_swagger_ui_renders_offline(new_page: Any, server: Server, shots: Shots) -> None:
    from playwright.sync_api import expect

    page = new_page()
    blocked = _offline(page)
    page.goto("/docs")
    # The first render parses a 1.5 MB script and a 200 KB document: on a loaded CI machine it
    # once took longer than the 5 s an expectation waits by default.
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Flagstaff", timeout=20_000)
    operation = page.locator(".opblock-summary-path", has_text="/flags/{key}/environments/{environment}/kill")
    expect(operation.first).to_be_visible()
    shots.take(page, "api-docs")
    assert blocked == []


def test_redoc_renders_offline(new_page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page = new_page()
    blocked = _offline(page)
    page.goto("/redoc")
    # ReDoc parses the whole document in the page before it draws anything: on a loaded
    # two-core CI machine that has taken longer than Playwright's default 5 s.
    expect(page.get_by_role("heading", name="Flagstaff", exact=False).first).to_be_visible(
        timeout=30_000)
    expect(page.get_by_text("Evaluate one flag for a context").first).to_be_attached()
    # ReDoc's "API docs by Redocly" footer links its logo from a CDN; nothing else is remote.
    assert [u for u in blocked if not u.endswith("/logo-mini.svg")] == []


def test_root_sends_a_browser_to_the_console(new_page: Any, server: Server) -> None:
    page = new_page()
    page.goto("/")
    page.wait_for_url("**/ui/login**")
    icon = page.request.get("/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"] == "image/x-icon"
