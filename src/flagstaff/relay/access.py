"""Each held environment's browser access, as the upstream last told it.

Pages use client-side keys at a relay as at the server, held to their environment's allowed
origins and secure mode (:mod:`flagstaff.browser`).  The relay learns those settings from its
upstream (``GET /relay/access``, asked with its own server-side key of each environment, which
answers for that environment only), asks again every ``interval`` seconds, and persists the
answers in the data directory so it starts with them when the upstream is away.  Until it has
heard them for an environment it cannot tell what a page may do there, so it refuses that
environment's client-side keys with 503 (:meth:`RelayAccess.require`).

``FLAGSTAFF_CORS_ORIGINS`` is the relay's own setting, as at the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flagstaff.browser.origins import AccessRules, EnvironmentAccess
from flagstaff.errors import Unavailable
from flagstaff.relay.upstream import Rejected, Unreachable, Upstream

log = logging.getLogger("flagstaff.relay")


def _parse(fields: Mapping[str, Any]) -> tuple[str, EnvironmentAccess]:
    origins = fields.get("allowed_origins")
    secret = fields.get("secure_mode_secret")
    if not isinstance(fields.get("environment"), str) or not isinstance(origins, list):
        raise ValueError("not a browser access answer")
    return str(fields["environment"]), EnvironmentAccess(
        frozenset(str(o) for o in origins),
        str(secret) if fields.get("secure_mode") is True and isinstance(secret, str) else None,
    )


def _dump(environment: str, access: EnvironmentAccess) -> dict[str, Any]:
    return {"environment": environment, "allowed_origins": sorted(access.origins),
            "secure_mode": access.secure_mode_secret is not None,
            "secure_mode_secret": access.secure_mode_secret}


class RelayAccess:
    """An :class:`~flagstaff.browser.origins.OriginPolicy` kept current from the upstream."""

    def __init__(
        self, *, upstream: Upstream | None, keys: Mapping[str, str], global_origins: Iterable[str],
        interval: float, on_changed: Callable[[], None] = lambda: None,
    ) -> None:
        self._upstream = upstream
        self._keys = dict(keys)  # the relay's own keys, by digest
        self._global = frozenset(global_origins)
        self._interval = interval
        self._on_changed = on_changed
        self.rules = AccessRules({}, self._global)

    # -- the OriginPolicy the CORS layer and the guard ask --------------------------------

    def fresh(self) -> bool:
        return True

    def allowed_everywhere(self, origin: str) -> bool:
        return self.rules.allowed_everywhere(origin)

    def origin_known(self, origin: str) -> bool:
        return self.rules.origin_known(origin)

    def origin_allowed(self, environment: str, origin: str) -> bool:
        return self.rules.origin_allowed(environment, origin)

    def environments_allowing(self, origin: str) -> list[str]:
        return self.rules.environments_allowing(origin)

    def secure_mode_secret(self, environment: str) -> str | None:
        return self.rules.secure_mode_secret(environment)

    # -- what the relay knows -------------------------------------------------------------

    def known(self, environment: str) -> EnvironmentAccess | None:
        return self.rules.environments.get(environment)

    def require(self, environment: str) -> None:
        """Raise 503 unless this environment's access is known (client-side keys need it)."""
        if environment not in self.rules.environments:
            raise Unavailable(
                f"the relay has not yet learnt from its upstream which origins and secure-mode "
                f"settings apply to {environment!r}; client-side keys are refused until it has",
                details={"retry_after": 5})

    def answer(self, environment: str) -> dict[str, Any]:
        """``GET /relay/access`` at this relay, for a downstream relay."""
        self.require(environment)
        return _dump(environment, self.rules.environments[environment])

    def _set(self, environment: str, access: EnvironmentAccess) -> None:
        if self.rules.environments.get(environment) == access:
            return
        self.rules = AccessRules({**self.rules.environments, environment: access}, self._global)
        self._on_changed()

    # -- persistence ----------------------------------------------------------------------

    def load(self, saved: Mapping[str, Any]) -> None:
        for fields in saved.get("environments", []) if isinstance(saved, Mapping) else []:
            try:
                self._set(*_parse(fields))
            except (ValueError, TypeError, AttributeError):
                continue

    def dump(self) -> dict[str, Any]:
        return {"environments": [_dump(e, a) for e, a in sorted(self.rules.environments.items())]}

    # -- following the upstream -----------------------------------------------------------

    async def refresh(self) -> None:
        """Ask the upstream once per held environment (one that cannot be asked keeps what
        was known; a refused key's environment is not served at all)."""
        if self._upstream is None:
            return
        for key in self._keys.values():
            try:
                answer = await self._upstream.access(key)
                self._set(*_parse(answer))
            except (Unreachable, Rejected, ValueError, TypeError) as exc:
                log.debug("could not learn an environment's browser access: %s", exc)

    async def refresh_forever(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self._interval)
