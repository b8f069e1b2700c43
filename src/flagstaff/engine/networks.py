"""IP addresses in CIDR ranges (IPv4 and IPv6), prepared as sorted integer intervals.

Operands are networks (``10.0.0.0/8``, ``2001:db8::/32``) or single addresses, parsed by the
standard ``ipaddress`` module when the flag is validated; a network with host bits set
(``10.0.0.1/8``) is refused rather than silently widened.  At compile time they become merged
``[first, last]`` integer intervals per family, so a match is one parse (cached) and one
bisection whatever the number of ranges.

An IPv4 address and its IPv4-mapped IPv6 form (``::ffff:10.1.2.3``, what a dual-stack socket
reports for an IPv4 client) are the same address: either form matches an IPv4 range and the
corresponding ``::ffff:0:0/96`` IPv6 range.  An IPv6 zone index (``fe80::1%eth0``) is ignored.
Attribute values are compared only as strings in standard notation (no integers, no leading
zeros in IPv4 octets, ASCII only); anything else is not comparable.
"""

from __future__ import annotations

import ipaddress
import socket
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache

MAX_ADDRESS_LENGTH = 64  # the longest IPv6 text form with a zone index fits
_MAPPED = 0xFFFF << 32
_V4_SPACE = 1 << 32

Intervals = tuple[tuple[int, ...], tuple[int, ...]]  # (firsts, lasts), sorted and disjoint


class NetworkError(ValueError):
    """An operand that is not a network or address; the message says why."""


def parse_network(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR operand; raises :class:`NetworkError`."""
    if not isinstance(text, str) or not text.isascii() or len(text) > MAX_ADDRESS_LENGTH:
        raise NetworkError("needs an IP network such as 10.0.0.0/8 or 2001:db8::/32, or an address")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            wide = ipaddress.ip_network(text, strict=False)
            raise NetworkError(f"{text} has host bits set; did you mean {wide}?") from None
        raise NetworkError(f"{text!r} is not an IP network or address") from None


def _merge(pairs: list[tuple[int, int]]) -> Intervals:
    merged: list[list[int]] = []
    for first, last in sorted(pairs):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return tuple(m[0] for m in merged), tuple(m[1] for m in merged)


def compile_networks(values: list[str]) -> tuple[Intervals, Intervals]:
    """(IPv4 intervals, IPv6 intervals) of validated operands.

    Mapped addresses are looked up as IPv4, so the part of an IPv6 range inside
    ``::ffff:0:0/96`` is entered in the IPv4 table too.
    """
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for value in values:
        net = parse_network(value)
        first, last = int(net.network_address), int(net.broadcast_address)
        if net.version == 4:
            v4.append((first, last))
        else:
            v6.append((first, last))
            low, high = max(first, _MAPPED), min(last, _MAPPED | (_V4_SPACE - 1))
            if low <= high:
                v4.append((low - _MAPPED, high - _MAPPED))
    return _merge(v4), _merge(v6)


@lru_cache(maxsize=4096)
def _address(text: str) -> tuple[int, int] | None:
    """(4 or 6, the address as an int) of an IP address in standard text form."""
    try:
        if ":" not in text:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        number = int.from_bytes(socket.inet_pton(socket.AF_INET6, text.partition("%")[0]), "big")
    except (OSError, ValueError):
        return None
    if number >> 32 == 0xFFFF:  # IPv4-mapped: compare it as the IPv4 address it is
        return 4, number & (_V4_SPACE - 1)
    return 6, number


def parse_address(value: object) -> tuple[int, int] | None:
    if not isinstance(value, str) or len(value) > MAX_ADDRESS_LENGTH or not value.isascii():
        return None
    return _address(str(value))


def _inside(number: int, intervals: Intervals) -> bool:
    firsts, lasts = intervals
    i = bisect_right(firsts, number) - 1
    return i >= 0 and number <= lasts[i]


def networks_pred(values: list[str]) -> Callable[[object], bool | None]:
    """A predicate ``address text -> True / False / None (not an address)``."""
    v4, v6 = compile_networks(values)

    def in_networks(v: object) -> bool | None:
        parsed = parse_address(v)
        if parsed is None:
            return None
        family, number = parsed
        return _inside(number, v4 if family == 4 else v6)

    return in_networks
