"""Which addresses webhooks may call (the server's SSRF stance), and calling them pinned.

Only admins create webhooks, and a delivery never shows the receiver's answer beyond its status
code, so a webhook is a poor tool for reading internal services; still, a URL must not reach
the server's own internals *by surprise*:

* link-local addresses (``169.254.0.0/16``, ``fe80::/10``: cloud metadata services),
  unspecified, multicast and reserved addresses are always refused;
* loopback (``127.0.0.0/8``, ``::1``) is refused unless ``FLAGSTAFF_WEBHOOK_ALLOW_LOOPBACK``
  is on (or the server runs with ``--insecure-dev``, i.e. on a developer's machine);
* private networks are allowed (internal receivers are the common case), unless
* ``FLAGSTAFF_WEBHOOK_ALLOWED_HOSTS`` is set: then only the hosts it lists (names, ``*.suffix``
  patterns, IP addresses or CIDR blocks) are called at all.

The check runs when a subscription is saved and again before every delivery, on the addresses
the host name resolves to *then*; the request goes to the checked address (the name is sent
as ``Host`` and TLS server name), so a name that re-resolves elsewhere between check and
connect (DNS rebinding) cannot slip past.  Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from flagstaff.errors import Invalid

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Blocked(Exception):
    """The URL may not be called; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send: the URL with the checked address in place of the name, and the name."""

    url: str
    host: str
    host_header: str


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    allow_loopback: bool = False
    names: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, allowed_hosts: str, *, allow_loopback: bool) -> EgressPolicy:
        names: list[str] = []
        networks: list[Network] = []
        for item in (part.strip() for part in allowed_hosts.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                names.append(item.lower().rstrip("."))
        return cls(allow_loopback=allow_loopback, names=tuple(names), networks=tuple(networks))

    @property
    def restricted(self) -> bool:
        return bool(self.names or self.networks)

    def _name_listed(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(
            host == name or (name.startswith("*.") and host.endswith(name[1:]))
            for name in self.names
        )

    def check_address(self, host: str, address: Address) -> None:
        listed = self._name_listed(host) or any(address in net for net in self.networks)
        if self.restricted and not listed:
            raise Blocked(f"{host} is not in FLAGSTAFF_WEBHOOK_ALLOWED_HOSTS")
        special = address.is_link_local or address.is_unspecified or address.is_multicast or (
            address.is_reserved and not address.is_private
        )
        # Only an explicitly listed address or block lets these through (never a name).
        if special and not any(address in net for net in self.networks):
            raise Blocked(f"{host} resolves to {address}, a link-local, unspecified, "
                          "multicast or reserved address")
        if address.is_loopback and not (self.allow_loopback or listed):
            raise Blocked(f"{host} resolves to the loopback address {address} (set "
                          "FLAGSTAFF_WEBHOOK_ALLOW_LOOPBACK to allow it)")

    def check_url(self, url: str) -> None:
        """What can be judged without resolving: IP literals, ``localhost`` and the allow-list
        (answered 400 when a subscription is saved)."""
        host = urlsplit(url).hostname or ""
        address: Address | None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            name = host.lower().rstrip(".")
            local = name in ("localhost", "localhost.localdomain") or name.endswith(".localhost")
            address = ipaddress.ip_address("127.0.0.1") if local else None
        try:
            if address is not None:
                self.check_address(host, address)
            elif self.restricted and not self._name_listed(host):
                raise Blocked(f"{host} is not in FLAGSTAFF_WEBHOOK_ALLOWED_HOSTS")
        except Blocked as exc:
            raise Invalid(str(exc), details={"field": "url"}) from None

    async def resolve(self, url: str) -> Target:
        """The URL with an allowed address of its host in place of the name."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise Blocked(f"cannot resolve {host}: {exc.strerror or exc}") from None
            addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
        if not addresses:
            raise Blocked(f"{host} has no address")
        for address in addresses:
            self.check_address(host, address)  # every address: a mixed answer is refused
        chosen = addresses[0]
        literal = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        netloc = f"{literal}:{parts.port}" if parts.port else literal
        host_header = parts.netloc.rsplit("@", 1)[-1]
        return Target(
            url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
            host=host, host_header=host_header,
        )
