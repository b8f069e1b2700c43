"""A page whose OFREP base URL is a relay, in Chromium, with the stock OFREP web provider (inside
``FlagstaffProvider``) on its default options: it renders the server's values and a kill on the
server re-renders it through the relay's own event stream, without a reload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from playwright.sync_api import expect

from tests.relayprocess import RelayProcess
from tests.sdk.conftest import eventually
from tests.web.conftest import FlagServer, Sites


def test_a_page_on_a_relay_follows_a_kill_through_it(
    open_page: Any, flag_server: FlagServer, sites: Sites, tmp_path: Path,
) -> None:
    relay_key = flag_server.api("POST", "/tokens", json={
        "name": "page-relay", "kind": "sdk-server", "environment": "production"})["secret"]
    relay = RelayProcess(keys=[relay_key], log_path=tmp_path / "relay.log",
                         upstream=flag_server.url, args=["--key-ttl", "1"]).start()
    key = flag_server.client_keys["production"]
    try:
        # Until the relay has heard production's origins from the server (503 before).
        assert eventually(lambda: httpx.post(
            f"{relay.url}/ofrep/v1/evaluate/flags", json={"context": {"targetingKey": "x"}},
            headers={"Authorization": f"Bearer {key}", "Origin": sites.site.origin},
        ).status_code == 200, timeout=15)
        query = {"server": relay.url, "key": key, "user": "reader-relay"}
        page, traffic = open_page(f"{sites.site.origin}/?{urlencode(query)}")
        expect(page.get_by_test_id("banner")).to_have_attribute("data-value", "true")
        page.wait_for_function("window.__probe.opened > 0")
        page.evaluate("window.__sameDocument = true")
        flag_server.api("POST", "/flags/banner/environments/production/kill")
        expect(page.get_by_test_id("banner")).to_have_attribute("data-value", "false",
                                                                timeout=10_000)
        assert page.evaluate("window.__sameDocument") is True
        messages = page.evaluate("window.__probe.messages")
        assert any('"refetchEvaluation"' in m["data"] for m in messages)
        # The page's stream is held by the relay, and nothing of the page reached the server.
        metrics = httpx.get(f"{relay.url}/metrics").text
        assert 'flagstaff_stream_clients{transport="ofrep-sse"} 1.0' in metrics
        assert traffic.requests == []
    finally:
        flag_server.api("PATCH", "/flags/banner/environments/production", json={"enabled": True})
        relay.kill()
