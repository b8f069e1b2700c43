"""Reconnect delays: exponential backoff with full jitter, and ``Retry-After`` parsing.

Full jitter (a uniform delay between zero and the exponential ceiling) spreads the reconnects of
many clients that lost the same server at the same moment, which is what prevents a thundering
herd when a server restarts.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

from flagstaff.numerals import ascii_decimal


class Backoff:
    """Delay sequence ``uniform(0, min(cap, base * 2**attempt))``.

    The sequence restarts from the base once a connection has stayed healthy for
    ``healthy_after`` seconds, so a client that reconnects fine after a long outage does not keep
    waiting up to the cap on its next, unrelated, drop.
    """

    def __init__(
        self,
        *,
        base: float,
        cap: float,
        healthy_after: float,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.healthy_after = healthy_after
        self.attempt = 0
        self._rng = rng or random.Random()
        self._connected_at: float | None = None

    def ceiling(self) -> float:
        # min() before the power would overflow is not needed: 2**attempt stays a float.
        return min(self.cap, self.base * (2.0 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def connected(self, now: float | None = None) -> None:
        self._connected_at = time.monotonic() if now is None else now

    def disconnected(self, now: float | None = None) -> None:
        """Record the end of a connection; reset the sequence if it was healthy long enough."""
        now = time.monotonic() if now is None else now
        if self._connected_at is not None and now - self._connected_at >= self.healthy_after:
            self.attempt = 0
        self._connected_at = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    seconds = ascii_decimal(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)
