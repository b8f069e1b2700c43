"""Beacons: an event batch that carries its client-side key in its body.

``navigator.sendBeacon`` (what a page uses when it is hidden) cannot set headers, and a
non-safelisted content type would make it a preflighted request the browser refuses to send, so
a batch to ``/exposures`` or ``/track`` may arrive as ``text/plain`` with no ``Authorization``
header and the key in the body (``"client_key": "fsc_..."``).  Only client-side keys travel that
way; server-side keys are secrets and belong in the ``Authorization`` header of a back end's
request.

The body is read for its key only once the request-limits checks accepted it
(``flagstaff.server.limits.parse_checked_body``): a body they do not accept names no key, and
the request is answered as one without a key.  The server (``flagstaff.server.routes.ingest``)
and a relay (``flagstaff.relay.app``, which then forwards the body as it came, key included, for
the server to check again) apply these rules.
"""

from __future__ import annotations

from typing import Any

from flagstaff.errors import Forbidden

BODY_KEY_FIELD = "client_key"
BEACON_PATHS = frozenset({"/exposures", "/track"})
_CLIENT_SIDE = "sdk-client"


def body_key(data: Any) -> str | None:
    """The key a decoded body carries in :data:`BODY_KEY_FIELD`, or None."""
    value = data.get(BODY_KEY_FIELD) if data.__class__ is dict else None
    return value if isinstance(value, str) else None


def require_client_side(kind: str) -> None:
    """Refuse (403) a key of ``kind`` found in a body unless it is client-side."""
    if kind != _CLIENT_SIDE:
        raise Forbidden(
            f"only client-side keys may travel in the body ({BODY_KEY_FIELD}); "
            "send other keys in the Authorization header",
            details={"field": BODY_KEY_FIELD},
        )
