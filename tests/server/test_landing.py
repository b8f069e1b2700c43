"""The front door: ``/`` sends browsers to the console and API clients to the docs; the
docs pages and the favicon are served from the package (the browser proof that /docs renders
with the network blocked is in tests/console/test_api_docs.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from flagstaff.server.app import create_app
from flagstaff.server.settings import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    database = tmp_path_factory.mktemp("landing") / "flagstaff.db"
    settings = Settings(database_url=f"sqlite:///{database}", demo=False, bootstrap_token="fsm_x" * 8)
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def test_a_browser_is_sent_to_the_console(client: TestClient) -> None:
    answer = client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert answer.status_code == 302 and answer.headers["location"] == "/ui"


@pytest.mark.parametrize("accept", ["application/json", "*/*", ""])
def test_an_api_client_is_sent_to_the_docs(client: TestClient, accept: str) -> None:
    answer = client.get("/", headers={"Accept": accept})
    assert answer.status_code == 302 and answer.headers["location"] == "/docs"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_every_asset_from_this_server(client: TestClient, page: str) -> None:
    html = client.get(page).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert sources, html
    for source in sources:
        assert source.startswith("/"), f"{page} loads {source} from elsewhere"
        assert client.get(source).status_code == 200, source
    assert "cdn" not in html.lower() and "fonts.googleapis" not in html


def test_assets_are_the_packaged_files_and_nothing_else(client: TestClient) -> None:
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    assert len(bundle.content) > 100_000
    assert client.get("/docs/assets/..%2F..%2Fcore.py").status_code == 404
    assert client.get("/docs/assets/favicon.png").status_code == 404


def test_favicon_is_an_icon(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    packaged = Path(__file__).parents[2] / "src/flagstaff/server/console/static/favicon.ico"
    assert icon.content == packaged.read_bytes() and icon.content[:4] == b"\x00\x00\x01\x00"
