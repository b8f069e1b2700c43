"""Console test fixtures: an app on the per-test database and signed-in console sessions."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings
from flagstaff.store import Store
from tests.console.browser import browser, new_page, server, shots

__all__ = ["browser", "new_page", "server", "shots"]  # browser fixtures (tests/console/browser.py)

ADMIN_SECRET = "fsm_console-test-admin-secret-0123456789abcdef"


@dataclass
class Secrets:
    admin: str
    editor: str
    viewer: str
    sdk: str


@pytest.fixture
def app(database_url: str) -> FastAPI:
    return create_app(Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def store(client: TestClient, app: FastAPI) -> Store:
    opened: Store = app.state.store
    return opened


@pytest.fixture
def secrets(store: Store) -> Secrets:
    def make(name: str, kind: str, role: str | None = None, env: str | None = None) -> str:
        return store.create_token(name=name, kind=kind, role=role, environment=env, actor="test")[1]

    return Secrets(
        admin=ADMIN_SECRET,
        editor=make("erin", "management", "editor"),
        viewer=make("vic", "management", "viewer"),
        sdk=make("sdk", "sdk-server", env="production"),
    )


def sign_in(client: TestClient, secret: str, *, next_url: str = "/ui/flags") -> str:
    """Sign in through the form; returns the session's CSRF token (from the page's meta tag)."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce is not None
    answer = client.post(
        "/ui/login", data={"nonce": nonce.group(1), "token": secret, "next": next_url},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/ui/flags").text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


def flag(key: str = "new-checkout", **envs: bool) -> dict[str, object]:
    return {
        "key": key, "type": "boolean", "tags": ["checkout"],
        "environments": {env: {"enabled": on} for env, on in envs.items()},
    }
