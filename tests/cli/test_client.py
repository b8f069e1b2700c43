from __future__ import annotations

import httpx
import pytest

from flagstaff.cli.client import ApiClient
from flagstaff.cli.config import Connection
from flagstaff.cli.errors import CliError, ExitCode


def _client(status: int, body: object) -> ApiClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return ApiClient(Connection("http://flags.test", "fsm_x"), transport=transport)


@pytest.mark.parametrize(
    ("status", "code", "exit_code", "fragment"),
    [
        (400, "invalid", ExitCode.INVALID, "bad operator (field rules[0].operator) [invalid]"),
        (401, "unauthorized", ExitCode.SERVER, "the token was rejected by http://flags.test"),
        (403, "forbidden", ExitCode.SERVER, "higher role"),
        (404, "not_found", ExitCode.INVALID, "not found: bad operator"),
        (409, "flag_exists", ExitCode.INVALID, "[flag_exists]"),
        (412, "precondition_failed", ExitCode.INVALID, "the flag changed since you read it"),
        (429, "rate_limited", ExitCode.SERVER, "retry later"),
        (503, "unavailable", ExitCode.SERVER, "the server failed (503 unavailable"),
    ],
)
def test_error_shape_maps_to_one_message(
    status: int, code: str, exit_code: ExitCode, fragment: str
) -> None:
    body = {
        "error": {
            "code": code,
            "message": "bad operator",
            "details": {"field": "rules[0].operator"},
        }
    }
    with _client(status, body) as client, pytest.raises(CliError) as info:
        client.get("/flags")
    assert info.value.code == exit_code
    assert fragment in info.value.message


def test_non_json_error_body_still_gives_a_message() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="Bad Gateway"))
    client = ApiClient(Connection("http://flags.test", "t"), transport=transport)
    with client, pytest.raises(CliError) as info:
        client.get("/flags")
    assert info.value.code == ExitCode.SERVER and "Bad Gateway" in info.value.message


def test_listing_follows_cursors() -> None:
    pages = {
        None: {"items": [{"key": "a"}], "next_cursor": "c1"},
        "c1": {"items": [{"key": "b"}], "next_cursor": None},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer t"
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    with ApiClient(
        Connection("http://flags.test", "t"), transport=httpx.MockTransport(handler)
    ) as client:
        assert [i["key"] for i in client.items("/flags")] == ["a", "b"]
