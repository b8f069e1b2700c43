"""A planted A/B effect, driven through the page, shows up in the experiment's results.

Each simulated user opens the example page: reading the experiment flag (``useABTest``) records
the exposure, and clicking the checkout button sends a conversion through OpenFeature's
``track()``; both leave the page as batches or, when the user navigates away, as beacons.
Treatment users convert three times as often as control users (a planted effect), and the
results must count exactly those users and conversions and call the lift significant.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from playwright.sync_api import expect

from tests.web.conftest import EXPERIMENT, FlagServer, Sites

USERS = 40


def converts(variant: str, index: int) -> bool:
    # Control converts one time in four, treatment three times in four.
    return (index % 4 == 0) if variant == "control" else (index % 4 != 0)


def test_a_planted_effect_through_the_page_shows_in_the_results(
    chromium: Any, flag_server: FlagServer, sites: Sites
) -> None:
    # A run of its own: other journeys in this worker's server evaluated the experiment too,
    # and results count the latest run only.
    flag_server.api("POST", "/experiments/checkout-button/complete")
    flag_server.api("PUT", "/experiments/checkout-button", params={"environment": "production"},
                    json=EXPERIMENT)
    assert flag_server.api("POST", "/experiments/checkout-button/start")["status"] == "running"
    context = chromium.new_context()
    context.set_default_timeout(20_000)
    assigned: dict[str, str] = {}
    converted: Counter[str] = Counter()
    try:
        page = context.new_page()
        for i in range(USERS):
            user = f"shopper-{i}"
            page.goto(sites.page_url(flag_server, user=user))
            button = page.get_by_test_id("checkout")
            expect(button).to_have_attribute("data-in-experiment", "true")
            variant = str(button.get_attribute("data-variant"))
            assigned[user] = variant
            expect(button).to_have_text("Buy now" if variant == "treatment" else "Checkout")
            if converts(variant, i):
                button.click()
                converted[variant] += 1
        page.goto("about:blank")  # the last page's events leave as beacons
    finally:
        context.close()

    users = Counter(assigned.values())
    assert set(users) == {"control", "treatment"}
    deadline = time.monotonic() + 60
    while True:
        results = flag_server.api("GET", "/experiments/checkout-button/results")
        by_variant = {v["variant"]: v for v in results["variants"]}
        seen = {k: (v["users"], v["conversions"]) for k, v in by_variant.items()}
        expected = {k: (users[k], converted[k]) for k in users}
        if seen == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert seen == expected
    lift = results["comparisons"][0]
    assert lift["variant"] == "treatment"
    observed = converted["treatment"] / users["treatment"] - converted["control"] / users["control"]
    assert abs(lift["absolute_lift"] - observed) < 1e-9
    assert lift["absolute_ci"]["lower"] > 0 and lift["significant"] is True
    assert results["srm"]["mismatch"] is False
