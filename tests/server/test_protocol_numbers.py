"""Numbers in headers and query strings, against a real server process: ASCII digits or a 400.

``"²"``, ``"①"`` and Arabic-Indic or full-width digits once passed ``str.isdigit()``; the first
two then made ``int()`` raise (a 500 with a traceback, before the key was even checked, so a
bogus key escaped the authentication-failure limit), the others were read as numbers.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from flagstaff.errors import Invalid
from flagstaff.server.etags import parse_if_match
from flagstaff.server.governance.signing import signature, verify
from flagstaff.server.routes.ofrep import change_id_of
from tests.server.test_stream_harness import Api, bearer, running_server

# As a client sends them: header bytes are Latin-1 on the wire ("²" is 0xB2, "¹" is 0xB9);
# query strings are percent-encoded UTF-8.
HEADER_VALUES = [b"\xb2", b"\xb9", b"1\xb2"]
QUERY_VALUES = ["%C2%B2", "%C2%B9", "%E2%91%A0", "%D9%A3", "%EF%BC%93"]


def test_stream_last_event_id_outside_ascii_is_a_400_and_a_bogus_key_a_counted_401(
    tmp_path: Path,
) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path,
                        FLAGSTAFF_MAX_AUTH_FAILURES="3") as server, Api(server) as api:
        key = api.sdk_key()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for value in HEADER_VALUES:
                answer = client.get("/stream", headers={**bearer(key), "Last-Event-ID": value})
                assert answer.status_code == 400, (value, answer.text)
                assert answer.json()["error"]["details"]["field"] == "Last-Event-ID"
            # A bogus key is refused as such, and each refusal counts towards the limit.
            for _ in range(3):
                answer = client.get(
                    "/stream", headers={**bearer("fss_" + "x" * 30), "Last-Event-ID": b"\xb2"})
                assert answer.status_code == 401, answer.text
            blocked = client.get("/stream", headers=bearer(key))
            assert blocked.status_code == 429
            assert int(blocked.headers["retry-after"]) >= 1


def test_websocket_last_event_id_outside_ascii_is_a_400(tmp_path: Path) -> None:
    with running_server(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path) as server, \
            Api(server) as api:
        key = api.sdk_key()

        async def refused(query: str) -> tuple[int, dict[str, Any]]:
            url = f"ws://127.0.0.1:{server.port}/ws?last_event_id={query}"
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, additional_headers=bearer(key)):
                    pass
            response = info.value.response
            return response.status_code, json.loads(response.body or b"{}")

        async def scenario() -> None:
            for query in QUERY_VALUES:
                status, body = await refused(query)
                assert status == 400, (query, status, body)
                assert body["error"]["details"]["field"] == "last_event_id"

        asyncio.run(scenario())


@pytest.mark.parametrize("value", ['"\u0663"', "W/\"\uff13\"", "\u0663", '"1²"'])
def test_if_match_takes_ascii_versions_only(value: str) -> None:
    with pytest.raises(Invalid):
        parse_if_match(value)
    assert parse_if_match('"3"') == 3


def test_event_stream_etags_and_webhook_timestamps_take_ascii_digits_only() -> None:
    installation = "0123456789abcdef"
    assert change_id_of(f'"{installation[:12]}-42"', installation) == 42
    for number in ["\u0664\u0662", "\uff14\uff12", "²"]:
        assert change_id_of(f'"{installation[:12]}-{number}"', installation) is None
    body = b"{}"
    assert verify("s", "1000", body, signature("s", 1000, body), now=1000)
    assert not verify("s", "\u0661\u0660\u0660\u0660", body, signature("s", 1000, body), now=1000)
    assert not verify("s", "²", body, signature("s", 2, body), now=2)
