"""in_cidr / not_in_cidr: IPv4, IPv6, IPv4-mapped addresses, boundaries, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, validate_flag
from flagstaff.engine.networks import compile_networks
from tests.builders import cond, flag, snapshot

INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fd00::/8", "2001:db8:1234::/48")


def matches(condition: dict[str, Any], value: Any) -> bool:
    f = flag("f").env("production", lambda e: e.on().rule("r", condition, serve="true").fallthrough("false"))
    detail = compile_snapshot(snapshot([f])).evaluate("f", {"key": "u", "ip": value}, None)
    assert detail.reason in (Reason.RULE_MATCH, Reason.FALLTHROUGH), detail
    return detail.reason is Reason.RULE_MATCH


@pytest.mark.parametrize(
    ("value", "inside"),
    [
        ("10.0.0.0", True),  # first address of the range
        ("10.255.255.255", True),  # last
        ("11.0.0.0", False),
        ("9.255.255.255", False),
        ("172.31.255.255", True),
        ("172.32.0.0", False),
        ("192.168.1.20", True),
        ("8.8.8.8", False),
        ("fd12:3456::1", True),
        ("FD12:3456::1", True),  # IPv6 hex digits in either case
        ("fe80::1", False),
        ("2001:db8:1234:ffff:ffff:ffff:ffff:ffff", True),
        ("2001:db8:1235::", False),
        ("::ffff:10.1.2.3", True),  # IPv4-mapped IPv6 is the IPv4 address
        ("::ffff:0a01:0203", True),  # the same, in hex
        ("::ffff:8.8.8.8", False),
        ("fd00::1%eth0", True),  # a zone index is ignored
    ],
)
def test_in_cidr(value: str, inside: bool) -> None:
    assert matches(cond("ip", "in_cidr", *INTERNAL), value) is inside
    assert matches(cond("ip", "not_in_cidr", *INTERNAL), value) is not inside


@pytest.mark.parametrize(
    "value",
    ["010.0.0.1", "10.0.0", "10.0.0.0.1", "10.0.0.256", "\uff110.0.0.1", "::ffff:garbage", "not an ip",
     "", 167772161, None, True, {"ip": "10.0.0.1"}, "1" * 100],
)
def test_not_an_address_matches_neither_twin(value: Any) -> None:
    assert not matches(cond("ip", "in_cidr", "0.0.0.0/0", "::/0"), value)
    assert not matches(cond("ip", "not_in_cidr", "10.0.0.0/8"), value)


def test_mapped_ranges_and_ipv4_addresses_are_the_same_space() -> None:
    assert matches(cond("ip", "in_cidr", "::ffff:10.0.0.0/104"), "10.9.9.9")
    assert matches(cond("ip", "in_cidr", "::ffff:10.0.0.0/104"), "::ffff:10.9.9.9")
    assert not matches(cond("ip", "in_cidr", "::ffff:10.0.0.0/104"), "11.0.0.1")
    assert not matches(cond("ip", "in_cidr", "2001:db8::/32"), "10.0.0.1")


def test_single_addresses_host_routes_and_lists() -> None:
    assert matches(cond("ip", "in_cidr", "203.0.113.7"), "203.0.113.7")
    assert not matches(cond("ip", "in_cidr", "203.0.113.7/32"), "203.0.113.8")
    assert matches(cond("ip", "in_cidr", "2001:db8::1/128"), "2001:db8:0:0:0:0:0:1")
    assert matches(cond("ip", "in_cidr", "10.0.0.0/8"), ["8.8.8.8", "10.1.1.1"])  # any element
    assert matches(cond("ip", "in_cidr", "10.0.0.0/8", negate=True), "8.8.8.8")


def test_overlapping_ranges_are_merged() -> None:
    v4, v6 = compile_networks(["10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "192.168.0.0/24"])
    assert v4 == ((0x0A000000, 0xC0A80000), (0x0BFFFFFF, 0xC0A800FF))
    assert v6 == ((), ())


@pytest.mark.parametrize(
    ("operand", "fragment"),
    [
        ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
        ("2001:db8::1/32", "did you mean 2001:db8::/32"),
        ("10.0.0.0/33", "not an IP network"),
        ("internal", "not an IP network"),
        ("\uff110.0.0.0/8", "needs an IP network"),
        (10, "needs an IP network"),
    ],
)
def test_invalid_networks_are_refused_on_write(operand: Any, fragment: str) -> None:
    definition = flag("f").env("production", lambda e: e.rule("r", cond("ip", "in_cidr", operand), serve="true")).build()
    with pytest.raises(DefinitionError) as info:
        validate_flag(definition)
    assert info.value.path == "environments.production.rules[0].conditions[0].values[0]"
    assert fragment in info.value.message
