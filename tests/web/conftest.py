"""Browser journeys against a real server process and the built React example.

One flag server, one build and one Chromium are shared by every test here (the tests share an
``xdist_group``, so they run in one worker, one after another).  The tests skip, saying why, when
Node.js or ``/usr/bin/chromium`` is missing; a failing ``npm ci`` or build fails them.

The server holds, in production, client-side flags the page renders (``banner``, ``headline``,
the ``checkout-button`` experiment) next to a server-only flag and targeting that names
segments, members and rules a page must never see; staging is in secure mode.  The example is
served on two origins: ``site`` (allowed in both environments) and ``elsewhere`` (allowed
nowhere).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from flagstaff.sdk import Client
from flagstaff.sdk.browser import bootstrap_script, browser_bootstrap
from tests.builders import FlagBuilder, cond, flag, segment
from tests.serverprocess import ServerProcess
from tests.web import webbuild
from tests.web.site import Site, rendered_page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ADMIN = "fsm_browser-journeys-admin-secret-0123456789abcdef"
EXPERIMENT = {"allocation": 100, "variations": [{"variant": "control", "weight": 50},
                                                {"variant": "treatment", "weight": 50}],
              "control": "control", "primary_metric": "checkout", "salt": "checkout-button-1"}
# Values a page must never be shown: authored rule ids, segment keys and members, other users.
SECRETS = ("vip-rule-authored-name", "internal-staff", "staff-member-7", "vip-user-0042",
           "backend-only")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.xdist_group("browser-journeys"))
            # The first test also pays for `npm ci`, the builds and the server's start.
            item.add_marker(pytest.mark.timeout(600))


@dataclass
class FlagServer:
    process: ServerProcess
    client_keys: dict[str, str] = field(default_factory=dict)
    server_key: str = ""

    @property
    def url(self) -> str:
        return self.process.url

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN}"},
                               timeout=30, **kwargs)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def example_dist() -> Path:
    reason = webbuild.node_missing()
    if reason:
        pytest.skip(reason)
    return webbuild.build()


def headline(*more_vips: str) -> FlagBuilder:
    """A client-side flag whose targeting names a user, a rule and a segment."""
    return (
        flag("headline").string({"welcome": "Welcome back", "vip": "Hello, VIP"}, off="welcome")
        .client_side()
        .env("production", lambda e: e.on().target("vip", "vip-user-0042", *more_vips)
             .rule("vip-rule-authored-name", cond("plan", "in", "vip"), serve="vip")
             .rule(None, cond(None, "segment_match", "internal-staff"), serve="vip")
             .fallthrough("welcome"))
        .env("staging", lambda e: e.on().fallthrough("welcome"))
    )


def _seed(server: FlagServer, site_origin: str) -> None:
    api = server.api
    api("POST", "/segments", json=segment("internal-staff").include("staff-member-7").build())
    for definition in (
        flag("banner").boolean().client_side().on("production", "staging"),
        headline(),
        flag("checkout-button").string({"control": "Checkout", "treatment": "Buy now"}, off="control")
        .kind("experiment").client_side()
        .env("production", lambda e: e.on().fallthrough("control")),
        flag("backend-only").boolean().on("production", "staging"),
    ):
        api("POST", "/flags", json=definition.build())
    api("PUT", "/experiments/checkout-button", params={"environment": "production"}, json=EXPERIMENT)
    assert api("POST", "/experiments/checkout-button/start")["status"] == "running"
    for environment in ("production", "staging"):
        server.client_keys[environment] = api("POST", "/tokens", json={
            "name": f"page-{environment}", "kind": "sdk-client", "environment": environment})["secret"]
        api("PATCH", f"/environments/{environment}/client-access",
            json={"allowed_origins": [site_origin]})
    api("PATCH", "/environments/staging/client-access", json={"secure_mode": True})
    server.server_key = api("POST", "/tokens", json={
        "name": "page-back-end", "kind": "sdk-server", "environment": "production"})["secret"]


class PageBackend:
    """The back end that renders the example's page with the user's first evaluations
    (``/rendered?user=...``), reading flags with the Python SDK as a real back end would."""

    def __init__(self, dist: Path) -> None:
        self.dist = dist
        self.server: FlagServer | None = None
        self.client: Client | None = None

    def render(self, query: dict[str, str]) -> str:
        assert self.server is not None and self.client is not None
        bootstrap = browser_bootstrap(self.client, {"targetingKey": query.get("user", "anonymous")})
        return rendered_page(
            (self.dist / "index.html").read_text(),
            config={"baseUrl": self.server.url, "clientKey": self.server.client_keys["production"]},
            bootstrap_script=bootstrap_script(bootstrap),
        )


@dataclass
class Sites:
    site: Site
    elsewhere: Site
    backend: PageBackend

    def page_url(self, server: FlagServer, *, user: str, environment: str = "production",
                 on: Site | None = None, **extra: str) -> str:
        query = {"server": server.url, "key": server.client_keys[environment], "user": user, **extra}
        return f"{(on or self.site).origin}/?{urlencode(query)}"

    def rendered_url(self, *, user: str) -> str:
        return f"{self.site.origin}/rendered?{urlencode({'user': user})}"


@pytest.fixture(scope="session")
def sites(example_dist: Path) -> Iterator[Sites]:
    backend = PageBackend(example_dist)
    site = Site(example_dist, backend.render).start()
    elsewhere = Site(example_dist).start()
    try:
        yield Sites(site, elsewhere, backend)
    finally:
        site.stop()
        elsewhere.stop()


@pytest.fixture(scope="session")
def flag_server(tmp_path_factory: pytest.TempPathFactory, sites: Sites) -> Iterator[FlagServer]:
    directory = tmp_path_factory.mktemp("browser_journeys")
    process = ServerProcess(
        f"sqlite:///{directory / 'flagstaff.db'}", directory / "server.log", admin_token=ADMIN,
        env={"FLAGSTAFF_LOG_LEVEL": "INFO", "FLAGSTAFF_BROWSER_ACCESS_REFRESH_SECONDS": "0.5",
             "FLAGSTAFF_BROWSER_INGEST_BATCHES_PER_MINUTE": "100000"},
    )
    process.start()
    try:
        server = FlagServer(process)
        _seed(server, sites.site.origin)
        sites.backend.server = server
        yield server
    finally:
        process.discard_prepared()
        process.stop()


@pytest.fixture
def page_backend(flag_server: FlagServer, sites: Sites) -> Iterator[PageBackend]:
    """The rendering back end's Python SDK client, for the tests that ask for rendered pages
    (per test: an SDK's threads must not outlive the tests that use it)."""
    client = Client(flag_server.url, sdk_key=flag_server.server_key, exposures="off")
    try:
        assert client.wait_until_ready(30)
        sites.backend.client = client
        yield sites.backend
    finally:
        sites.backend.client = None
        client.close()


@pytest.fixture(scope="module")
def chromium(example_dist: Path) -> Iterator[Any]:
    """Chromium for one module's journeys.  Not for the session: while Playwright's sync API
    is started it holds its event loop as the thread's running loop, so every test this
    worker runs afterwards that calls ``asyncio.run`` would fail."""
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


class Traffic:
    """Every request the page sends to the flag server and every answer it gets."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.requests: list[Any] = []
        self.responses: list[Any] = []

    def on_request(self, request: Any) -> None:
        if request.url.startswith(self.server_url):
            self.requests.append(request)

    def on_response(self, response: Any) -> None:
        if response.url.startswith(self.server_url):
            self.responses.append(response)

    def bulk(self, *, since: int = 0) -> list[Any]:
        """Bulk evaluations answered (preflights excluded), from response number ``since``."""
        return [r for r in self.responses[since:] if "/ofrep/v1/evaluate/flags" in r.url
                and r.request.method == "POST"]

    def streams(self) -> list[Any]:
        return [r for r in self.requests if "/ofrep/v1/event-stream" in r.url]


# Records, in the page, every event-stream message it receives and each change of the values
# the components render, with the wall-clock time (so a test can time a re-render).
PAGE_PROBE = """
(() => {
  window.__probe = { messages: [], renders: [], loadingSeen: false, opened: 0 };
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    constructor(url, init) {
      super(url, init);
      this.addEventListener("open", () => { window.__probe.opened += 1; });
      this.addEventListener("message", (e) => {
        window.__probe.messages.push({ id: e.lastEventId, data: e.data, at: Date.now() });
      });
    }
  };
  const watch = () => {
    const seen = {};
    const look = () => {
      if (document.querySelector('[data-testid="loading"]')) window.__probe.loadingSeen = true;
      for (const id of ["banner", "headline", "checkout"]) {
        const el = document.querySelector(`[data-testid="${id}"]`);
        if (!el) continue;
        const value = el.getAttribute("data-value") ?? el.textContent;
        if (seen[id] !== value) {
          seen[id] = value;
          window.__probe.renders.push({ id, value, at: Date.now() });
        }
      }
    };
    new MutationObserver(look).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    look();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
  else watch();
})();
"""


@pytest.fixture
def open_page(chromium: Any, flag_server: FlagServer) -> Iterator[Any]:
    """``open_page(url)`` -> ``(page, traffic)`` in a fresh browser context (its own storage)."""
    contexts: list[Any] = []

    def make(url: str, *, wait_ready: bool = True) -> tuple[Any, Traffic]:
        context = chromium.new_context(viewport={"width": 900, "height": 600})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        traffic = Traffic(flag_server.url)
        page.on("request", traffic.on_request)
        page.on("response", traffic.on_response)
        page.add_init_script(PAGE_PROBE)
        page.goto(url)
        if wait_ready:
            from playwright.sync_api import expect

            expect(page.locator("body")).to_have_attribute("data-flags", "READY")
        return page, traffic

    yield make
    for context in contexts:
        context.close()
