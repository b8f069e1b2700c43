"""The SDK's fleet reports: after applying a change, heartbeats, piggy-backed headers, leaving."""

from __future__ import annotations

import dataclasses
import socket
import time

from flagstaff.sdk import Client, EventOptions
from flagstaff.sdk.fleet import SDK_NAME
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag

REPORTING = dataclasses.replace(FAST, report_jitter=0.05, report_interval=30.0)


def reports_of(server: FakeServer, instance: str | None) -> list[dict[str, object]]:
    with server.cond:
        return [r for r in server.reports if r["instance"] == instance]


def test_a_client_reports_what_it_applied_soon_after_applying_it(server: FakeServer) -> None:
    with Client(server.url, sdk_key=KEY, options=REPORTING) as client:
        assert client.wait_until_ready(timeout=5)
        instance = client.instance
        assert instance is not None and len(instance) >= 8
        assert eventually(lambda: any(r["version"] == client.version
                                      for r in reports_of(server, instance)))
        first = reports_of(server, instance)[0]
        assert first["kind"] == "sdk" and first["sdk"] == SDK_NAME
        assert first["host"] == socket.gethostname() and isinstance(first["pid"], int)
        changed_at = time.monotonic()
        version = server.set_flag(bool_flag("new-checkout", False, version=2))
        assert eventually(lambda: any(r["version"] == version for r in reports_of(server, instance)))
        # Within the jitter (0.05 s) plus the machine's delays, not at the next heartbeat (30 s).
        assert time.monotonic() - changed_at < 5


def test_a_quiet_client_sends_heartbeats(server: FakeServer) -> None:
    options = dataclasses.replace(REPORTING, report_interval=0.2)
    with Client(server.url, sdk_key=KEY, options=options) as client:
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: len(reports_of(server, client.instance)) >= 4, timeout=5)
        versions = {r["version"] for r in reports_of(server, client.instance)}
        assert versions == {client.version}


def test_closing_says_the_instance_left(server: FakeServer) -> None:
    client = Client(server.url, sdk_key=KEY, options=REPORTING)
    assert client.wait_until_ready(timeout=5)
    instance = client.instance
    assert eventually(lambda: reports_of(server, instance))
    client.close()
    assert reports_of(server, instance)[-1].get("left") is True


def test_polls_and_analytics_posts_carry_the_report_in_headers(server: FakeServer) -> None:
    options = dataclasses.replace(REPORTING, stream=False, poll_interval=0.1)
    events = EventOptions(counts_interval=0.2, count_drain_interval=0.05)
    with Client(server.url, sdk_key=KEY, options=options, event_options=events) as client:
        assert client.wait_until_ready(timeout=5)
        client.bool("new-checkout", {"key": "u"}, False)
        paths = lambda: {h["path"] for h in server.report_headers}  # noqa: E731
        assert eventually(lambda: {"/evaluation-counts", "/sdk/flags"} <= paths(), timeout=10)
        polls = [h for h in server.report_headers if h["path"] == "/sdk/flags"]
        assert polls and all(h["instance"] == client.instance for h in polls)
        assert polls[-1]["version"] == str(client.version)


def test_reporting_can_be_switched_off(server: FakeServer) -> None:
    options = dataclasses.replace(REPORTING, report=False, stream=False, poll_interval=0.05)
    with Client(server.url, sdk_key=KEY, options=options) as client:
        assert client.wait_until_ready(timeout=5)
        assert client.instance is None
        assert eventually(lambda: server.seen and len(server.seen) >= 3)
        assert not server.reports and not server.report_headers


def test_a_server_without_the_fleet_view_is_not_pestered(server: FakeServer) -> None:
    server.refuse["/fleet/reports"] = (404, {})
    options = dataclasses.replace(REPORTING, report_interval=0.05)
    with Client(server.url, sdk_key=KEY, options=options) as client:
        assert client.wait_until_ready(timeout=5)
        fleet = client._fleet
        assert fleet is not None
        assert eventually(lambda: fleet.failed == 1)
        time.sleep(0.3)
        assert fleet.failed == 1 and fleet.headers() == {}
