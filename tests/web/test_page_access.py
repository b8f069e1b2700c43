"""What a page may see and who may ask: every answer a page receives is free of targeting
data, secure mode refuses a forged signature, and only the environment's origins are served."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.sync_api import expect

from flagstaff.secure_mode import secure_mode_hash
from tests.web.conftest import SECRETS, FlagServer, Sites

# The provider's state after a refusal: ERROR, or FATAL for a 401/403 (retrying cannot help).
FAILED = re.compile("^(ERROR|FATAL)$")
CLIENT_SIDE = {"banner", "checkout-button", "headline"}


def assert_defaults_only(page: Any) -> None:
    """The page shows nothing the server said: the loading state or the code's defaults (the
    banner is on in both environments, so its default, off, is not a server value)."""
    banner = page.get_by_test_id("banner")
    assert banner.count() == 0 or banner.get_attribute("data-value") == "false"


def test_no_answer_a_page_receives_carries_targeting_data(
    open_page: Any, flag_server: FlagServer, sites: Sites
) -> None:
    page, traffic = open_page(sites.page_url(flag_server, user="private-1"))
    expect(page.get_by_test_id("checkout")).to_be_visible()
    page.wait_for_function("window.__probe.opened > 0")
    # A change, so the stream and a re-fetch are part of what the page receives.
    flag_server.api("PATCH", "/flags/banner/environments/production", json={"enabled": False})
    try:
        expect(page.get_by_test_id("banner")).to_have_attribute("data-value", "false")
        page.get_by_test_id("checkout").click()
        page.evaluate("window.flagstaff.provider.recorder.flush()")
    finally:
        flag_server.api("PATCH", "/flags/banner/environments/production", json={"enabled": True})
    expect(page.get_by_test_id("banner")).to_have_attribute("data-value", "true")

    bodies: list[str] = []
    for response in traffic.responses:
        if "/event-stream" in response.url or response.request.method == "OPTIONS":
            continue
        bodies.append(response.text() if response.status != 304 else "")
    # The stream's messages, as the page's EventSource received them.
    bodies.extend(m["data"] for m in page.evaluate("window.__probe.messages"))
    assert len([r for r in traffic.bulk() if r.status == 200]) >= 2 and len(bodies) >= 4
    for body in bodies:
        for secret in SECRETS:
            assert secret not in body, (secret, body)
        for word in ('"rules"', '"targets"', '"segment', '"ruleId"', '"prerequisiteKey"',
                     '"version"', '"conditions"', '"salt"'):
            assert word not in body, (word, body)
    for response in traffic.bulk():
        if response.status == 200:
            answer = response.json()
            assert {f["key"] for f in answer["flags"]} == CLIENT_SIDE
            for item in answer["flags"]:
                assert set(item) <= {"key", "value", "reason", "variant", "metadata"}
                assert set(item["metadata"]) <= {"inExperiment", "flagstaffReason"}
    # The page cannot ask for the server-only flag by name either.
    with httpx.Client(timeout=10) as http:
        single = http.post(f"{flag_server.url}/ofrep/v1/evaluate/flags/backend-only",
                           json={"context": {"targetingKey": "private-1"}},
                           headers={"Authorization": f"Bearer {flag_server.client_keys['production']}",
                                    "Origin": sites.site.origin})
    assert single.status_code == 404 and single.json()["errorCode"] == "FLAG_NOT_FOUND"


def test_secure_mode_refuses_a_forged_signature_and_serves_a_signed_one(
    open_page: Any, flag_server: FlagServer, sites: Sites
) -> None:
    secret = flag_server.api("GET", "/environments/staging/secure-mode-secret")["secret"]
    forged = "0" * 64
    someone_elses = secure_mode_hash(secret, "victim")
    for hash_ in (forged, someone_elses):
        page, traffic = open_page(sites.page_url(flag_server, user="mallory", environment="staging",
                                                 hash=hash_), wait_ready=False)
        expect(page.locator("body")).to_have_attribute("data-flags", FAILED)
        refused = traffic.bulk()
        assert refused and all(r.status == 403 for r in refused)
        assert "secureModeHash" in refused[0].json()["errorDetails"]
        assert_defaults_only(page)
    # Unsigned: refused as well.
    page, traffic = open_page(sites.page_url(flag_server, user="mallory", environment="staging"),
                              wait_ready=False)
    expect(page.locator("body")).to_have_attribute("data-flags", FAILED)
    assert {r.status for r in traffic.bulk()} == {403}
    # Signed by the back end: served, stream included.
    page, traffic = open_page(sites.page_url(flag_server, user="mallory", environment="staging",
                                             hash=secure_mode_hash(secret, "mallory")))
    expect(page.get_by_test_id("banner")).to_have_attribute("data-value", "true")
    assert [r.status for r in traffic.bulk()] == [200]
    page.wait_for_function("window.__probe.opened > 0")


def test_an_allowed_origin_is_served_and_another_is_refused_with_a_diagnosable_log_line(
    open_page: Any, flag_server: FlagServer, sites: Sites
) -> None:
    page, traffic = open_page(sites.page_url(flag_server, user="origin-1"))
    expect(page.get_by_test_id("banner")).to_have_attribute("data-value", "true")
    ok = traffic.bulk()[0]
    assert ok.status == 200
    assert ok.header_value("access-control-allow-origin") == sites.site.origin

    elsewhere = sites.elsewhere.origin
    page, traffic = open_page(sites.page_url(flag_server, user="origin-1", on=sites.elsewhere),
                              wait_ready=False)
    expect(page.locator("body")).to_have_attribute("data-flags", FAILED)
    assert_defaults_only(page)
    # The browser saw no answer it may read (a refused preflight or no CORS headers) ...
    readable = [r for r in traffic.bulk() if r.header_value("access-control-allow-origin")]
    assert readable == []
    # ... and the server's log names the origin and the setting that would allow it.
    lines = [json.loads(line) for line in flag_server.log().splitlines() if elsewhere in line]
    assert lines, "no log line names the refused origin"
    message = " ".join(str(line.get("message", "")) for line in lines)
    assert "allowed_origins" in message or "allowed-origin" in message, message
