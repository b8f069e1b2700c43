"""The checks on a request from a page, once its key names the environment.

* **Origin**: a client-side key used from a page must come from an origin its environment
  allows (``Origin`` header; requests without one are not from a page and CORS does not apply).
  A server-side key is a secret and must never be in a page: refused from any origin not in
  ``FLAGSTAFF_CORS_ORIGINS``.
* **Secure mode**: in an environment in secure mode, a client-side key's context must carry a
  ``secureModeHash`` of its targeting key (:mod:`flagstaff.secure_mode`), so a user cannot ask
  for another user's answers.  The hash is removed from the context before evaluation either
  way (it is not a user attribute).

Refusals are 403 ``forbidden`` naming the problem; an origin refusal is also logged with the
setting that allows it (browsers hide the reason from the page).  The server
(``flagstaff.server.browser.guard``) and the relay call these with the key they resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flagstaff.browser.cors import RefusalLog
from flagstaff.browser.origins import HOW_TO_ALLOW, OriginPolicy
from flagstaff.errors import Forbidden
from flagstaff.secure_mode import HASH_ATTRIBUTE, verify

SDK_SERVER = "sdk-server"
SDK_CLIENT = "sdk-client"


@dataclass(frozen=True, slots=True)
class SdkKey:
    """The key a request was made with, as the checks (and their log lines) need it."""

    kind: str  # sdk-server, sdk-client, or a management token's kind (not checked)
    token_id: str
    name: str | None = None  # the key's name where it is known (the server's log names it)

    @property
    def described(self) -> str:
        return f"{self.name!r} ({self.token_id})" if self.name is not None else self.token_id


def check_origin(
    policy: OriginPolicy, refusals: RefusalLog, *, origin: str | None, path: str, key: SdkKey,
    environment: str,
) -> None:
    """Raise :class:`~flagstaff.errors.Forbidden` unless a request from ``origin`` (None: not a
    page) may use ``key`` in ``environment``."""
    if origin is None or key.kind not in (SDK_CLIENT, SDK_SERVER):
        return
    if key.kind == SDK_SERVER:
        if policy.allowed_everywhere(origin):
            return
        refusals.warn(origin, "server key", (
            f"refused a request from origin {origin!r} to {path} made with a server-side SDK "
            f"key ({key.described}): server-side keys are secrets and "
            "must never be in a page; give the page a client-side key (kind sdk-client)"
        ))
        raise Forbidden(
            "server-side SDK keys must not be used from a browser; use a client-side key "
            "(fsc_...)", details={"field": "Authorization"},
        )
    if policy.origin_allowed(environment, origin):
        return
    elsewhere = policy.environments_allowing(origin)
    hint = (f"it is allowed in {', '.join(elsewhere)}, not in {environment}" if elsewhere
            else f"no environment allows it; {HOW_TO_ALLOW.format(origin=origin)}")
    refusals.warn(origin, f"environment {environment}", (
        f"CORS: refused a request from origin {origin!r} to {path} with client-side key "
        f"{key.described} of environment {environment!r}: {hint}"
    ))
    raise Forbidden(
        f"origin {origin!r} is not allowed for environment {environment!r}",
        details={"field": "Origin"},
    )


def checked_context(
    policy: OriginPolicy, *, kind: str, environment: str, context: Mapping[str, Any],
) -> dict[str, Any]:
    """The context to evaluate: without its secure-mode hash, which must be valid when the
    environment is in secure mode and the key is client-side."""
    given = context.get(HASH_ATTRIBUTE)
    if HASH_ATTRIBUTE in context:
        clean = {k: v for k, v in context.items() if k != HASH_ATTRIBUTE}
    else:
        clean = dict(context)
    if kind != SDK_CLIENT:
        return clean
    secret = policy.secure_mode_secret(environment)
    if secret is None:
        return clean
    key = clean.get("targetingKey", clean.get("targeting_key", clean.get("key")))
    if not isinstance(key, str) or not key:
        raise Forbidden(
            f"environment {environment!r} is in secure mode: the context needs a targetingKey "
            f"and its {HASH_ATTRIBUTE} (signed by your back end)",
            details={"field": "context.targetingKey", "errorCode": "TARGETING_KEY_MISSING"},
        )
    if given is None:
        raise Forbidden(
            f"environment {environment!r} is in secure mode: the context needs "
            f"{HASH_ATTRIBUTE}, the HMAC of its targetingKey signed by your back end",
            details={"field": f"context.{HASH_ATTRIBUTE}", "errorCode": "INVALID_CONTEXT"},
        )
    if not verify(secret, key, given):
        raise Forbidden(
            f"{HASH_ATTRIBUTE} does not match the context's targetingKey (secure mode)",
            details={"field": f"context.{HASH_ATTRIBUTE}", "errorCode": "INVALID_CONTEXT"},
        )
    return clean
