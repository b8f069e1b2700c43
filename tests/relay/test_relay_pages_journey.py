"""A page's journey through a relay, with real processes: a server, ``flagstaff relay`` and a
client-side key used against the relay only.

Invariants: the relay answers a page exactly as the server does (the same preflight answers
for an allowed and a misspelt origin, the same client-side flags with the same values), its
bulk answer names an event stream at the relay that wakes the page when a flag it sees is
killed on the server, a beacon (the key in the body) sent to the relay is filed by the server,
and secure mode switched on at the server is enforced at the relay (a forged signature refused
as the server refuses it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from flagstaff.secure_mode import secure_mode_hash
from tests.builders import flag
from tests.relay.conftest import Server
from tests.relayprocess import RelayProcess
from tests.sdk.conftest import eventually
from tests.server.test_ofrep_stream import Events, refetch

SHOP = "https://shop.example.com"
BULK = "/ofrep/v1/evaluate/flags"
pytestmark = pytest.mark.slow


def _token(api: httpx.Client, kind: str) -> str:
    answer = api.post("/tokens", json={"name": f"pages-{kind}", "kind": kind,
                                       "environment": "production"})
    answer.raise_for_status()
    return str(answer.json()["secret"])


def _flags(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    return list(answer.json()["flags"])


def test_a_page_served_by_a_relay_as_by_the_server(server: Server, tmp_path: Path) -> None:
    with server.api() as api:
        for built in (flag("page-banner").boolean().client_side().on("production"),
                      flag("page-hidden").boolean().on("production")):
            api.post("/flags", json=built.build()).raise_for_status()
        api.patch("/environments/production/client-access",
                  json={"allowed_origins": [SHOP]}).raise_for_status()
        relay_key, page_key = _token(api, "sdk-server"), _token(api, "sdk-client")
    relay = RelayProcess(keys=[relay_key], log_path=tmp_path / "relay.log", upstream=server.url,
                         data_dir=tmp_path / "relay-data", args=["--key-ttl", "1"]).start()
    try:
        page = {"Authorization": f"Bearer {page_key}", "Origin": SHOP}
        context = {"context": {"targetingKey": "u-1"}}
        # The relay serves client-side keys once it has heard the environment's access.
        assert eventually(lambda: httpx.post(relay.url + BULK, json=context,
                                             headers=page).status_code == 200, timeout=15)

        # Preflights: the relay answers an allowed and a misspelt origin as the server does.
        for origin in (SHOP, "https://shop.exmaple.com"):
            asked = {"Origin": origin, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"}
            at_server = httpx.options(server.url + BULK, headers=asked)
            at_relay = httpx.options(relay.url + BULK, headers=asked)
            assert at_relay.status_code == at_server.status_code == (
                204 if origin == SHOP else 403)
            assert at_relay.content == at_server.content
            for header in ("access-control-allow-origin", "access-control-allow-methods",
                           "access-control-allow-headers", "access-control-max-age", "vary"):
                assert at_relay.headers.get(header) == at_server.headers.get(header), header

        # Bulk evaluation: the client-side flags only, with the server's values.
        from_server = httpx.post(server.url + BULK, json=context, headers=page)
        from_relay = httpx.post(relay.url + BULK, json=context, headers=page)
        assert _flags(from_relay) == _flags(from_server)
        keys = {f["key"] for f in _flags(from_relay)}
        assert "page-banner" in keys and "page-hidden" not in keys
        assert from_relay.headers["access-control-allow-origin"] == SHOP

        # A beacon through the relay is filed by the server: the same batch sent there again
        # is a duplicate.
        beacon = json.dumps({"batch_id": "relay-beacon-1", "client_key": page_key, "events": [
            {"flag_key": "page-banner", "variant": "true", "user_key": "u-1",
             "timestamp": "2026-01-01T00:00:00Z", "reason": "SPLIT", "flag_version": None,
             "in_experiment": True}]}).encode()
        as_sent = {"Origin": SHOP, "Content-Type": "text/plain;charset=UTF-8"}
        through = httpx.post(relay.url + "/exposures", content=beacon, headers=as_sent)
        assert through.status_code == 202 and through.json() == {"accepted": 1, "duplicate": False}, through.text
        assert through.headers["access-control-allow-origin"] == SHOP
        again = httpx.post(server.url + "/exposures", content=beacon, headers=as_sent)
        assert again.json() == {"accepted": 0, "duplicate": True}

        # The relay's event stream wakes the page when the flag is killed on the server.
        streams = from_relay.json()["eventStreams"]
        events = Events(relay.url + streams[0]["endpoint"]["requestUri"], {"Origin": SHOP})
        try:
            assert events.status == 200
            assert events.response_headers["access-control-allow-origin"] == SHOP
            events.drain()
            with server.api() as api:
                api.post("/flags/page-banner/environments/production/kill").raise_for_status()
            woken = refetch(events.next(timeout=15))
            assert woken["etag"]
        finally:
            events.close()
        again = httpx.post(relay.url + BULK, json=context, headers=page)
        banner = next(f for f in _flags(again) if f["key"] == "page-banner")
        assert banner["value"] is False
        assert _flags(again) == _flags(httpx.post(server.url + BULK, json=context, headers=page))

        # Secure mode, switched on at the server, reaches the relay: a forged hash is refused
        # there exactly as at the server, a hash signed with the secret is served.
        with server.api() as api:
            api.patch("/environments/production/client-access",
                      json={"secure_mode": True}).raise_for_status()
            secret = api.get("/environments/production/secure-mode-secret").json()["secret"]
        single = "/ofrep/v1/evaluate/flags/page-banner"
        forged = {"context": {"targetingKey": "u-1",
                              "secureModeHash": secure_mode_hash("fsh_guessed", "u-1")}}
        assert eventually(lambda: httpx.post(relay.url + single, json=forged,
                                             headers=page).status_code == 403, timeout=15)
        at_server = httpx.post(server.url + single, json=forged, headers=page)
        at_relay = httpx.post(relay.url + single, json=forged, headers=page)
        assert at_relay.status_code == at_server.status_code == 403
        assert at_relay.json() == at_server.json()
        signed = {"context": {"targetingKey": "u-1",
                              "secureModeHash": secure_mode_hash(secret, "u-1")}}
        served = httpx.post(relay.url + single, json=signed, headers=page)
        assert served.status_code == 200 and served.json()["value"] is False
    finally:
        relay.kill()
