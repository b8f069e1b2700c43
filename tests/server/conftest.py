"""Server test fixtures: an app on the per-test database, tokens of every kind, live servers."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.x warns once, at import, that its TestClient prefers httpx2 over httpx; the
# suite runs with warnings as errors and httpx is what the project depends on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.coalesced_writes import HTTP_PROTOCOL
from flagstaff.server.settings import Settings

ADMIN_SECRET = "fsm_test-bootstrap-admin-secret-0123456789abcdef"


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Tokens:
    """Secrets of every principal kind; ``revoked`` was an admin token, now revoked."""

    admin: str
    editor: str
    viewer: str
    sdk_server: str
    sdk_client: str
    revoked: str


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def create_token(client: TestClient, kind: str, *, role: str | None = None,
                 environment: str | None = None, name: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name or f"{kind}-{role or environment}", "kind": kind}
    if role:
        body["role"] = role
    if environment:
        body["environment"] = environment
    response = client.post("/tokens", json=body, headers=auth(ADMIN_SECRET))
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def tokens(client: TestClient) -> Tokens:
    revoked = create_token(client, "management", role="admin", name="to-revoke")
    response = client.delete(f"/tokens/{revoked['id']}", headers=auth(ADMIN_SECRET))
    assert response.status_code == 200, response.text
    return Tokens(
        admin=ADMIN_SECRET,
        editor=create_token(client, "management", role="editor", name="erin")["secret"],
        viewer=create_token(client, "management", role="viewer", name="vic")["secret"],
        sdk_server=create_token(client, "sdk-server", environment="production")["secret"],
        sdk_client=create_token(client, "sdk-client", environment="production")["secret"],
        revoked=revoked["secret"],
    )


class LiveServer:
    """uvicorn serving an app in a thread on a free port, with the server's HTTP protocol;
    stopped by ``close``."""

    def __init__(self, app: FastAPI, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on",
                                http=HTTP_PROTOCOL)
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


@pytest.fixture
def live_server(app: FastAPI, unused_port: int) -> Iterator[LiveServer]:
    server = LiveServer(app, unused_port).start()
    try:
        yield server
    finally:
        server.close()
