"""Origins and each environment's browser access: the facts, and the questions asked of them.

An environment allows a list of origins (``scheme://host[:port]``, as browsers serialise them)
and may be in secure mode, with a secret its back end signs context keys with
(:mod:`flagstaff.secure_mode`).  ``FLAGSTAFF_CORS_ORIGINS`` allows origins everywhere (``*``:
any origin, for development).  :class:`AccessRules` answers every question the CORS layer and
the request guard ask, from an immutable copy of those facts; the server builds it from its
store (``flagstaff.server.browser.access``), a relay from what its upstream tells it
(``flagstaff.relay.access``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from flagstaff.errors import Invalid

_DEFAULT_PORTS = {"http": 80, "https": 443}
HOW_TO_ALLOW = (
    "allow it for an environment with `flagstaff envs update <environment> --allow-origin "
    "{origin}` (PATCH /environments/<environment> {{\"allowed_origins\": [...]}}), or for "
    "every environment and the management API with FLAGSTAFF_CORS_ORIGINS"
)


def normalise_origin(value: Any, field: str) -> str:
    """The serialised origin browsers send (``scheme://host[:port]``, lower case, default port
    dropped); a trailing slash is forgiven, a path, query or credentials are refused."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{field}: an origin is a string like https://app.example.com",
                      details={"field": field})
    text = value.strip()
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None or parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname
        or parts.path not in ("", "/") or parts.query or parts.fragment
        or parts.username is not None or not text.isascii()
    ):
        raise Invalid(
            f"{field}: {text!r} is not an origin; write scheme://host[:port] with nothing after "
            "it, e.g. https://app.example.com or http://localhost:5173",
            details={"field": field},
        )
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if ":" in host:  # an IPv6 literal keeps its brackets in an origin
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def origins_setting(value: Iterable[str]) -> frozenset[str]:
    """``FLAGSTAFF_CORS_ORIGINS`` as serialised origins (``*``: any origin, for development)."""
    return frozenset(
        o if o == "*" else normalise_origin(o, "FLAGSTAFF_CORS_ORIGINS") for o in value
    )


@dataclass(frozen=True, slots=True)
class EnvironmentAccess:
    origins: frozenset[str]
    secure_mode_secret: str | None  # set only while secure mode is on


class OriginPolicy(Protocol):
    """What the CORS layer and the guard ask; :class:`AccessRules` answers it, and so do the
    holders that keep one current (``fresh``: answerable without blocking I/O)."""

    def fresh(self) -> bool: ...
    def allowed_everywhere(self, origin: str) -> bool: ...
    def origin_known(self, origin: str) -> bool: ...
    def origin_allowed(self, environment: str, origin: str) -> bool: ...
    def environments_allowing(self, origin: str) -> list[str]: ...
    def secure_mode_secret(self, environment: str) -> str | None: ...


class AccessRules:
    """One consistent copy of every environment's access settings plus the global origins."""

    __slots__ = ("_any_origin", "environments", "global_origins")

    def __init__(self, environments: Mapping[str, EnvironmentAccess],
                 global_origins: Iterable[str] = ()) -> None:
        self.environments = dict(environments)
        self.global_origins = frozenset(global_origins)
        # Allowed by at least one environment or globally.
        self._any_origin = self.global_origins.union(
            *(e.origins for e in self.environments.values()))

    def fresh(self) -> bool:
        return True

    def allowed_everywhere(self, origin: str) -> bool:
        """Allowed by ``FLAGSTAFF_CORS_ORIGINS`` (``*`` allows any origin)."""
        return origin in self.global_origins or "*" in self.global_origins

    def origin_known(self, origin: str) -> bool:
        """Allowed in at least one environment (or globally): enough to answer a preflight,
        which carries no credentials and so names no environment."""
        return self.allowed_everywhere(origin) or origin in self._any_origin

    def origin_allowed(self, environment: str, origin: str) -> bool:
        if self.allowed_everywhere(origin):
            return True
        access = self.environments.get(environment)
        return access is not None and origin in access.origins

    def environments_allowing(self, origin: str) -> list[str]:
        return sorted(k for k, v in self.environments.items() if origin in v.origins)

    def secure_mode_secret(self, environment: str) -> str | None:
        """The secret to check context hashes with, or None when secure mode is off."""
        access = self.environments.get(environment)
        return None if access is None else access.secure_mode_secret
