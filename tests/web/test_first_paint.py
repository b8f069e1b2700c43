"""No flicker on first paint: a page its back end rendered with the user's first evaluations
(the Python SDK's ``browser_bootstrap``) paints the user's values before any answer from the flag
server, while the same page served as static files waits for the network."""

from __future__ import annotations

import time
from typing import Any

import httpx
from playwright.sync_api import expect

from flagstaff.sdk.browser import browser_bootstrap
from tests.web.conftest import PAGE_PROBE, FlagServer, PageBackend, Sites

VIP = "vip-user-0042"  # targeted: the headline's value differs from the code's default
DELAY_SECONDS = 1.5


def first_paint(chromium: Any, flag_server: FlagServer, url: str) -> dict[str, Any]:
    """Open ``url`` with the bulk evaluation held back ``DELAY_SECONDS``; return what the page
    painted first and when the bulk answer arrived."""
    context = chromium.new_context()
    context.set_default_timeout(20_000)
    try:
        page = context.new_page()
        page.add_init_script(PAGE_PROBE)

        def slow(route: Any) -> None:
            time.sleep(DELAY_SECONDS)  # the browser keeps rendering meanwhile
            route.continue_()

        page.route(f"{flag_server.url}/ofrep/v1/evaluate/flags", slow)
        page.goto(url)
        expect(page.get_by_test_id("headline")).to_have_text("Hello, VIP")
        expect(page.locator("body")).to_have_attribute("data-flags", "READY")
        page.wait_for_function(
            "performance.getEntriesByType('resource').some(e => e.name.endsWith('/ofrep/v1/evaluate/flags'))")
        answered = page.evaluate("""
            performance.timeOrigin + performance.getEntriesByType('resource')
              .find(e => e.name.endsWith('/ofrep/v1/evaluate/flags')).responseEnd""")
        probe = page.evaluate("window.__probe")
        headline = [r for r in probe["renders"] if r["id"] == "headline"]
        return {"headline": headline, "loading": probe["loadingSeen"], "answered": answered,
                "shown": page.get_by_test_id("headline").inner_text()}
    finally:
        context.close()


def test_a_server_rendered_page_paints_the_users_values_before_the_network_answers(
    chromium: Any, flag_server: FlagServer, sites: Sites, page_backend: PageBackend
) -> None:
    rendered = first_paint(chromium, flag_server, sites.rendered_url(user=VIP))
    # The first value ever in the DOM is the user's, never the default, never a loading state,
    # and it was there before the flag server's answer arrived.
    assert [r["value"] for r in rendered["headline"]] == ["Hello, VIP"]
    assert rendered["loading"] is False
    assert rendered["headline"][0]["at"] < rendered["answered"]

    # The same page without the bootstrap waits for the network (so the check above can fail).
    static = first_paint(chromium, flag_server, sites.page_url(flag_server, user=VIP))
    assert static["loading"] is True
    assert static["headline"][0]["value"] == "Hello, VIP"
    assert static["headline"][0]["at"] >= static["answered"] - 50


def test_the_bootstrap_is_what_the_bulk_evaluation_answers_the_page(
    flag_server: FlagServer, page_backend: PageBackend
) -> None:
    assert page_backend.client is not None
    for user in (VIP, "someone", "staff-member-7"):
        context = {"targetingKey": user, "plan": "free"}
        bootstrap = browser_bootstrap(page_backend.client, context)
        answer = httpx.post(f"{flag_server.url}/ofrep/v1/evaluate/flags", json={"context": context},
                            headers={"Authorization": f"Bearer {flag_server.client_keys['production']}"},
                            timeout=10)
        assert bootstrap == {"context": context, "flags": answer.json()["flags"]}
