"""Short-lived signed URLs for the OFREP event stream (``EventSource`` cannot send headers).

The bulk evaluation response names the stream with a token in its query string instead of the
SDK key: ``base64url(key id, environment, expiry) "." base64url(HMAC-SHA256)`` under the
signing key of whoever serves the stream: the server's database's (``installation.signing_key``,
shared by every replica), or a relay's, derived from its own keys (``flagstaff.relay.pages``).  It names the key
by id, never by secret, so a leaked URL grants only "something changed" notifications for one
environment until it expires, and revoking the key ends that too (the stream checks the key
when it connects).

Tokens are issued per time window of ``FLAGSTAFF_BROWSER_STREAM_TOKEN_SECONDS`` (default one
hour) and expire at the end of the next window, so every page holding the same key in the same
window gets the same URL (the bulk answer, ETag included, stays the same for unchanged flags)
and a token is valid for one to two windows.  A page whose stream ends after its token expired
fails to reconnect; the stock OFREP provider then re-fetches the bulk evaluation, which carries
a fresh URL.  Stream URLs are never logged (the access log records paths without query strings).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_PARAM = "token"
MAX_REMEMBERED = 10_000  # issued tokens kept for reuse (one per key and environment)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class StreamGrant:
    """What a valid token grants: one key's notifications for one environment until ``expires``."""

    token_id: str
    environment: str
    expires: int


class StreamTokens:
    def __init__(
        self, signing_key: str, *, window_seconds: int, clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = signing_key.encode()
        self.window = window_seconds
        self._clock = clock
        # (key id, environment) -> (window, token): a token is the same all window long, and
        # signing it anew for every bulk answer cost as much as evaluating the flags.
        self._issued: dict[tuple[str, str], tuple[int, str]] = {}

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]

    def issue(self, *, token_id: str, environment: str) -> str:
        window = int(self._clock()) // self.window
        issued = self._issued.get((token_id, environment))
        if issued is not None and issued[0] == window:
            return issued[1]
        expires = (window + 2) * self.window
        payload = json.dumps([token_id, environment, expires], separators=(",", ":")).encode()
        token = f"{_b64(payload)}.{_b64(self._sign(payload))}"
        if len(self._issued) >= MAX_REMEMBERED:
            self._issued.clear()
        self._issued[(token_id, environment)] = (window, token)
        return token

    def verify(self, token: str | None) -> StreamGrant | None:
        """The grant of a genuine, unexpired token, else None (never raises)."""
        if not token or len(token) > 512 or token.count(".") != 1:
            return None
        encoded, signature = token.split(".")
        try:
            payload = _unb64(encoded)
            given = _unb64(signature)
        except ValueError:
            return None
        if not hmac.compare_digest(self._sign(payload), given):
            return None
        try:
            token_id, environment, expires = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if not (isinstance(token_id, str) and isinstance(environment, str)
                and isinstance(expires, int)):
            return None
        if expires <= self._clock():
            return None
        return StreamGrant(token_id, environment, expires)
