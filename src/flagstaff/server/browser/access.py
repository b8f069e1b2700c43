"""The origin and secure-mode policy browsers are held to, kept in process memory.

Every request from a page may be checked here (CORS preflights, evaluations, ingestion), so the
policy answers from memory: each environment's allowed origins and secure-mode secret, plus the
origins ``FLAGSTAFF_CORS_ORIGINS`` allows everywhere.  It reloads from the store at most every
``refresh_seconds`` and at once after a local change (:meth:`AccessPolicy.invalidate`), so a
change made on another replica applies within that bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flagstaff.browser.origins import AccessRules, EnvironmentAccess

if TYPE_CHECKING:
    from flagstaff.store import Store

log = logging.getLogger("flagstaff.server.browser")


@dataclass(frozen=True, slots=True)
class _Loaded:
    rules: AccessRules
    at: float


class AccessPolicy:
    def __init__(
        self, store: Callable[[], Store], *, global_origins: Iterable[str] = (), refresh_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self.global_origins = frozenset(global_origins)
        self._refresh = refresh_seconds
        self._clock = clock
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._loaded = None

    def fresh(self) -> bool:
        """Whether the policy can answer without reading the store (async callers read it in
        a thread first when it cannot)."""
        loaded = self._loaded
        return loaded is not None and self._clock() - loaded.at < self._refresh

    def load(self) -> None:
        """Reload from the store if the policy is due (blocking: async callers use a thread)."""
        self._current()

    def _current(self) -> _Loaded:
        loaded = self._loaded
        if loaded is not None and self._clock() - loaded.at < self._refresh:
            return loaded
        with self._lock:
            loaded = self._loaded
            if loaded is not None and self._clock() - loaded.at < self._refresh:
                return loaded
            try:
                records = self._store().list_client_access()
            except Exception:
                if loaded is None:
                    raise
                # The database is away: keep enforcing what we knew rather than failing pages.
                log.warning("could not reload browser access settings; keeping the last ones",
                            exc_info=True)
                return loaded
            environments = {
                r.environment: EnvironmentAccess(
                    frozenset(r.allowed_origins),
                    r.secure_mode_secret if r.secure_mode else None,
                )
                for r in records
            }
            loaded = _Loaded(AccessRules(environments, self.global_origins), self._clock())
            self._loaded = loaded
            return loaded

    def allowed_everywhere(self, origin: str) -> bool:
        """Allowed by ``FLAGSTAFF_CORS_ORIGINS`` (``*`` allows any origin)."""
        return origin in self.global_origins or "*" in self.global_origins

    def origin_known(self, origin: str) -> bool:
        """Allowed in at least one environment (or globally): enough to answer a preflight,
        which carries no credentials and so names no environment."""
        return self.allowed_everywhere(origin) or self._current().rules.origin_known(origin)

    def origin_allowed(self, environment: str, origin: str) -> bool:
        return self.allowed_everywhere(origin) or \
            self._current().rules.origin_allowed(environment, origin)

    def environments_allowing(self, origin: str) -> list[str]:
        return self._current().rules.environments_allowing(origin)

    def secure_mode_secret(self, environment: str) -> str | None:
        """The secret to check context hashes with, or None when secure mode is off."""
        return self._current().rules.secure_mode_secret(environment)

    def environment(self, environment: str) -> EnvironmentAccess:
        """``environment``'s own settings (none: no origin, secure mode off), for its relays."""
        found = self._current().rules.environments.get(environment)
        return found if found is not None else EnvironmentAccess(frozenset(), None)
