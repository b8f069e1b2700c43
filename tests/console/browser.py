"""Real-browser fixtures: a server subprocess on SQLite and Debian's Chromium via Playwright.

The tests are skipped only when ``/usr/bin/chromium`` is missing (CI installs it).  Set
``FLAGSTAFF_UI_SCREENSHOTS=<dir>`` to also copy the documentation screenshots there
(``docs/img`` for ``docs/console.md``); they are always written to the test's ``tmp_path``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serverprocess import server_process

CHROMIUM = Path("/usr/bin/chromium")
ADMIN = "fsm_console-e2e-admin-secret-0123456789abcdef"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@dataclass
class Server:
    url: str
    admin: str

    def api(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.admin}", **kwargs.pop("headers", {})}
        answer = httpx.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("ui_server")
    with server_process(
        f"sqlite:///{directory / 'flagstaff.db'}", directory / "server.log", admin_token=ADMIN,
        FLAGSTAFF_LOG_LEVEL="WARNING", FLAGSTAFF_STREAM_KEEPALIVE_SECONDS="2",
    ) as process:
        yield Server(url=process.url, admin=ADMIN)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium per module (its tests run in one worker); every test gets fresh contexts
    (``new_page``).  Not per session: while Playwright's sync API is started it holds its
    event loop as the thread's running loop, and every later ``asyncio.run`` in that worker
    would fail."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def new_page(browser: Any, server: Server) -> Iterator[Any]:
    """``new_page()`` opens a page in a fresh browser context (its own cookies)."""
    contexts: list[Any] = []

    def make() -> Any:
        context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


class Shots:
    """Screenshots into ``tmp_path``, copied to ``$FLAGSTAFF_UI_SCREENSHOTS`` when set."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        target = os.environ.get("FLAGSTAFF_UI_SCREENSHOTS")
        self.copy_to = Path(target) if target else None
        self.taken: list[Path] = []

    def take(self, page: Any, name: str, *, full_page: bool = False) -> Path:
        path = self.directory / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        assert path.stat().st_size > 1000
        self.taken.append(path)
        if self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.copy_to / path.name)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path)


def sign_in(page: Any, secret: str, path: str = "/ui/flags") -> None:
    page.goto(path)
    page.get_by_label("Management token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path}")
    wait_live(page)


def wait_live(page: Any) -> None:
    """Wait until the page's script has connected to the live stream (string evaluation,
    as in ``wait_for_function``, is refused by the console's content security policy)."""
    from playwright.sync_api import expect

    expect(page.locator("body")).to_have_attribute("data-live", "connected")
