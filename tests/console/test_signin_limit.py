"""Failed console sign-ins count against the API's auth-failure limiter, on SQLite
and PostgreSQL: over the limit, the sign-in page refuses every token with 429, Retry-After and
the message next to the field, until the window ends; successful sign-ins never count."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from tests.console.conftest import ADMIN_SECRET

LIMIT = 3
WINDOW = 60.0
GUESS = "fsm_a-wrong-guess-0123456789abcdef0123456789"


@pytest.fixture
def app(database_url: str) -> FastAPI:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        max_auth_failures=LIMIT, auth_failure_window_seconds=WINDOW)
    return create_app(settings)


@pytest.fixture
def clock(app: FastAPI) -> list[float]:
    """The limiter's clock, moved by hand."""
    now = [1000.0]
    app.state.auth_failure_limiter.clock = lambda: now[0]
    return now


def _client(app: FastAPI, ip: str) -> TestClient:
    return TestClient(app, client=(ip, 50000))


@pytest.fixture
def client(app: FastAPI, clock: list[float]) -> Iterator[TestClient]:
    with _client(app, "203.0.113.7") as test_client:
        yield test_client


def _post(client: TestClient, token: str) -> httpx.Response:
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None, form.text
    answer: httpx.Response = client.post(
        "/ui/login", data={"nonce": nonce.group(1), "token": token}, follow_redirects=False
    )
    return answer


def _field_error(page: httpx.Response) -> str:
    """The message shown next to the token field."""
    assert page.headers["content-type"].startswith("text/html")
    assert 'aria-invalid="true" aria-describedby="token-error"' in page.text
    match = re.search(r'<p id="token-error" class="error" role="alert">([^<]*)</p>', page.text)
    assert match is not None, page.text
    return match.group(1)


def _assert_refused(page: httpx.Response) -> None:
    assert page.status_code == 429, page.text
    assert "Too many failed sign-ins" in _field_error(page)
    assert 1 <= int(page.headers["Retry-After"]) <= WINDOW
    assert page.headers["X-Frame-Options"] == "DENY"  # still a console page
    assert "flagstaff_session" not in page.headers.get("set-cookie", "")


def test_failed_sign_ins_are_limited_and_then_every_sign_in_is_refused(
    client: TestClient, clock: list[float]
) -> None:
    for _ in range(3 * LIMIT):  # successful sign-ins never count
        assert _post(client, ADMIN_SECRET).status_code == 303
    client.cookies.clear()
    for _ in range(LIMIT):
        wrong = _post(client, GUESS)
        assert wrong.status_code == 401
        assert "Unknown or revoked token" in _field_error(wrong)

    refused = _post(client, GUESS)
    _assert_refused(refused)
    # A right token is refused too (a guesser must not learn which guess was right), and the
    # form itself says why rather than answering JSON.
    _assert_refused(_post(client, ADMIN_SECRET))
    _assert_refused(client.get("/ui/login"))
    assert client.get("/ui/flags", follow_redirects=False).status_code == 429

    clock[0] += WINDOW - 1
    assert int(_post(client, ADMIN_SECRET).headers["Retry-After"]) == 1
    clock[0] += 1  # the window has ended
    assert _post(client, ADMIN_SECRET).status_code == 303
    assert client.get("/ui/flags").status_code == 200


def test_the_console_and_the_api_share_one_limiter_per_address(
    app: FastAPI, client: TestClient, clock: list[float]
) -> None:
    with _client(app, "198.51.100.20") as other:
        # Failed console sign-ins block the address on the API...
        for _ in range(LIMIT):
            assert _post(client, GUESS).status_code == 401
        api = client.get("/flags", headers={"Authorization": f"Bearer {ADMIN_SECRET}"})
        assert api.status_code == 429 and api.json()["error"]["code"] == "rate_limited"
        # ... but not other addresses, whose sign-ins still work.
        assert _post(other, ADMIN_SECRET).status_code == 303

        # API failures count against console sign-ins.
        for _ in range(LIMIT):
            bad = other.get("/flags", headers={"Authorization": f"Bearer {GUESS}"})
            assert bad.status_code == 401
        _assert_refused(_post(other, ADMIN_SECRET))
