"""Which webhook URLs may be called: link-local never, loopback only when allowed, an
allow-list when set; the request goes to the address that was checked."""

from __future__ import annotations

import asyncio
import ipaddress
from urllib.parse import urlsplit

import pytest

from flagstaff.errors import Invalid
from flagstaff.server.governance.egress import Blocked, EgressPolicy

OPEN = EgressPolicy.parse("", allow_loopback=False)
LOOPBACK_OK = EgressPolicy.parse("", allow_loopback=True)
LISTED = EgressPolicy.parse("hooks.slack.com, *.example.com, 10.1.0.0/16", allow_loopback=False)


@pytest.mark.parametrize(
    ("policy", "url", "refused"),
    [
        (OPEN, "http://169.254.169.254/latest/meta-data/", "link-local"),
        (LOOPBACK_OK, "http://169.254.169.254/", "link-local"),
        (OPEN, "http://[fe80::1]/", "link-local"),
        (OPEN, "http://0.0.0.0:8400/", "unspecified"),
        (OPEN, "http://127.0.0.1:8400/tokens", "loopback"),
        (OPEN, "http://localhost/", "loopback"),
        (OPEN, "http://[::1]/", "loopback"),
        (LISTED, "https://attacker.test/", "ALLOWED_HOSTS"),
        (LISTED, "http://10.2.0.1/", "ALLOWED_HOSTS"),
    ],
)
def test_refused_urls_say_why(policy: EgressPolicy, url: str, refused: str) -> None:
    with pytest.raises(Invalid, match=refused) as caught:
        policy.check_url(url)
    assert caught.value.details == {"field": "url"}


@pytest.mark.parametrize(
    ("policy", "url"),
    [
        (OPEN, "https://hooks.slack.com/services/x"),
        (OPEN, "http://10.0.0.7:9000/hook"),  # private networks: internal receivers are normal
        (LOOPBACK_OK, "http://127.0.0.1:9000/hook"),
        (LISTED, "https://hooks.slack.com/services/x"),
        (LISTED, "https://ci.example.com/hook"),
        (LISTED, "http://10.1.2.3/hook"),
    ],
)
def test_allowed_urls(policy: EgressPolicy, url: str) -> None:
    policy.check_url(url)


def test_delivery_resolves_checks_every_address_and_pins_the_checked_one() -> None:
    target = asyncio.run(LOOPBACK_OK.resolve("http://localhost:9/hook?x=1"))
    assert ipaddress.ip_address(urlsplit(target.url).hostname or "").is_loopback
    assert target.url.endswith(":9/hook?x=1")
    assert (target.host, target.host_header) == ("localhost", "localhost:9")
    with pytest.raises(Blocked, match="loopback"):
        asyncio.run(OPEN.resolve("http://localhost:9/hook"))
