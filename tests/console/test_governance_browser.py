"""Governed change in a real browser: reviewing and applying a change request, scheduling and
cancelling a change, and a webhook whose deliveries reach a real receiver."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.console.browser import ADMIN, Server, Shots, needs_chromium, sign_in
from tests.serverprocess import server_process

# The module's server and browser start inside the first test: give a loaded machine room.
pytestmark = [needs_chromium, pytest.mark.slow, pytest.mark.timeout(420)]


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The console's server, allowed to call a webhook receiver on this machine."""
    directory = tmp_path_factory.mktemp("governance_ui")
    with server_process(
        f"sqlite:///{directory / 'flagstaff.db'}", directory / "server.log", admin_token=ADMIN,
        FLAGSTAFF_LOG_LEVEL="WARNING", FLAGSTAFF_WEBHOOK_ALLOW_LOOPBACK="true",
    ) as process:
        yield Server(url=process.url, admin=ADMIN)


def rollout(true_weight: int) -> dict[str, Any]:
    return {"rollout": {"variations": [{"variant": "true", "weight": true_weight},
                                       {"variant": "false", "weight": 100 - true_weight}]}}


def test_a_reviewer_approves_and_applies_a_change_request_seeing_who_it_moves(
    server: Server, new_page: Callable[[], Any], shots: Shots
) -> None:
    server.api("POST", "/flags", json={"key": "new-checkout", "type": "boolean", "environments": {
        "production": {"enabled": True, "fallthrough": rollout(10)}}})
    server.api("PUT", "/environments/production/policy", json={"required_approvals": 1})
    erin = server.api("POST", "/tokens", json={"name": "erin", "kind": "management", "role": "editor"})
    proposed = server.api("POST", "/change-requests", token=erin["secret"], json={
        "flag": "new-checkout", "environment": "production", "patch": {"fallthrough": rollout(30)},
        "description": "ramp the new checkout to 30 %"})

    page = new_page()
    sign_in(page, ADMIN, "/ui/changes")
    row = page.get_by_role("row", name=f"#{proposed['id']}")
    expect(row).to_contain_text("open")
    row.get_by_role("link", name=f"#{proposed['id']}").click()
    page.wait_for_url(f"**/ui/changes/{proposed['id']}")
    expect(page.locator("#reassigned")).to_contain_text("moves 20 % of its users to another variant")
    expect(page.locator(".diff").first).to_contain_text("environments.production.fallthrough")
    expect(page.locator("#cr-status")).to_have_text("open")
    shots.take(page, "console-change-review", full_page=True)

    page.get_by_label("Comment").fill("checked the error budget")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#cr-status")).to_have_text("approved")
    expect(page.get_by_text("checked the error budget")).to_be_visible()
    page.get_by_role("button", name="Apply now").click()
    confirm = page.locator("#confirm-dialog")
    expect(confirm).to_contain_text(f"Apply change request #{proposed['id']}")
    confirm.get_by_role("button", name="Apply").click()
    expect(page.locator("#cr-status")).to_have_text("applied")
    flag = server.api("GET", "/flags/new-checkout")
    assert flag["environments"]["production"]["fallthrough"] == rollout(30)
    shots.take(page, "console-change-applied", full_page=True)


def test_schedule_a_change_see_it_and_cancel_it(
    server: Server, new_page: Callable[[], Any], shots: Shots
) -> None:
    server.api("POST", "/flags", json={"key": "night-mode", "type": "boolean",
                                        "environments": {"staging": {"enabled": False}}})
    page = new_page()
    sign_in(page, ADMIN, "/ui/schedules")
    form = page.locator("form[data-api='/ui/api/schedules']")
    form.get_by_label("Flag key").fill("night-mode")
    form.get_by_label("Environment").select_option("staging")
    form.get_by_label("Change").select_option("enable")
    form.get_by_label("At (ISO-8601 with a time zone)").fill("next week")
    form.get_by_role("button", name="Schedule").click()
    # Refused, next to the field it names, and nothing saved.
    expect(form.locator(".field-error")).to_contain_text("at must be an ISO-8601 time with a timezone")
    expect(form.get_by_label("At (ISO-8601 with a time zone)")).to_have_attribute("aria-invalid", "true")
    assert server.api("GET", "/schedules")["items"] == []
    at = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    form.get_by_label("At (ISO-8601 with a time zone)").fill(at.isoformat().replace("+00:00", "Z"))
    form.get_by_label("Description").fill("night mode for the launch")
    form.get_by_role("button", name="Schedule").click()
    row = page.locator("tr[data-schedule]").first
    expect(row).to_contain_text("night mode for the launch")
    expect(row).to_contain_text("pending")
    shots.take(page, "console-schedules", full_page=True)
    [made] = server.api("GET", "/schedules")["items"]
    assert (made["flag"], made["environment"], made["action"]) == ("night-mode", "staging", "enable")

    row.get_by_role("button", name="Cancel").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Cancel schedule").click()
    expect(page.locator("tr[data-schedule]").first).to_contain_text("cancelled")
    assert server.api("GET", f"/schedules/{made['id']}")["status"] == "cancelled"


class Receiver(BaseHTTPRequestHandler):
    got: queue.Queue[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.put((self.headers["X-Flagstaff-Event"], body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_create_a_webhook_and_watch_its_delivery_log(
    server: Server, new_page: Callable[[], Any], shots: Shots, tmp_path: Path
) -> None:
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    handler = type("Handler", (Receiver,), {"got": got})
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        page = new_page()
        sign_in(page, ADMIN, "/ui/webhooks")
        form = page.locator("form[data-api='/ui/api/webhooks']")
        form.get_by_label("URL").fill(url)
        form.get_by_label("Events (comma-separated; empty: all)").fill("flag.*")
        form.get_by_label("Flags (comma-separated; empty: all)").fill("hooked")
        form.get_by_role("button", name="Create webhook").click()
        secret = page.get_by_label("Signing secret", exact=True)
        expect(secret).to_be_visible()
        assert len(secret.input_value()) >= 32
        page.get_by_role("link", name="Done").click()
        page.get_by_role("link", name=url).click()

        server.api("POST", "/flags", json={"key": "hooked", "type": "boolean"})
        event, _ = got.get(timeout=60)
        assert event == "flag.created"
        with page.expect_navigation():  # the page reloads itself once the ping is sent
            page.get_by_role("button", name="Send a ping").click()
        assert got.get(timeout=60)[0] == "ping"
        page.reload()  # the ping's own row, written after the receiver answered
        log = page.locator("#deliveries")
        expect(log).to_contain_text("flag.created")
        expect(log.locator("tr[data-delivery]", has_text="flag.created")).to_contain_text("delivered")
        expect(log.locator("tr[data-delivery]", has_text="flag.created")).to_contain_text("204")
        shots.take(page, "console-webhook-deliveries", full_page=True)

        log.locator("tr[data-delivery]", has_text="flag.created").get_by_role("button", name="Redeliver").click()
        again, _ = got.get(timeout=60)
        assert again == "flag.created"
    finally:
        receiver.shutdown()
        receiver.server_close()
