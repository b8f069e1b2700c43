"""Every console route refuses a request without a session.

The console authenticates by session cookie, so the bearer-token matrix in
``tests/server/test_auth_matrix.py`` leaves ``/ui`` to this walker; a new console route that
forgets the session check fails here.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from tests.console.conftest import ADMIN_SECRET
from tests.server.test_auth_matrix import app_routes

# Reachable before signing in: the sign-in form itself, the static assets it needs, the bare
# /ui redirect (which lands on a guarded page) and sign-out (which only clears the cookie).
PUBLIC = {
    ("GET", "/ui"),
    ("GET", "/ui/login"),
    ("POST", "/ui/login"),
    ("POST", "/ui/logout"),
    ("GET", "/ui/static/{name}"),
}


@pytest.fixture
def app(database_url: str) -> FastAPI:
    # Every refused request counts as an authentication failure from one address: room for
    # all the console's routes, so the walk checks each route's guard, not the rate limit.
    return create_app(Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                               max_auth_failures=10_000))


def console_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {(m, p) for m, p in app_routes(app) if p.startswith("/ui")}


def test_the_console_has_routes_to_guard(app: FastAPI) -> None:
    routes = console_routes(app)
    assert len(routes - PUBLIC) >= 10
    assert routes >= PUBLIC, "a public console route named here no longer exists"


def test_every_console_route_needs_a_session(app: FastAPI) -> None:
    with TestClient(app) as client:
        for method, path in sorted(console_routes(app) - PUBLIC):
            url = re.sub(r"\{[^}]+\}", "x", path)
            # A bearer token is not a console session: it must not open the console either.
            answer = client.request(
                method,
                url,
                headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
                follow_redirects=False,
            )
            if answer.status_code == 303:
                assert answer.headers["location"].startswith("/ui/login"), (method, path)
            else:
                assert answer.status_code == 401, (method, path, answer.status_code)
                assert answer.json()["error"]["code"] == "unauthorized", (method, path)
