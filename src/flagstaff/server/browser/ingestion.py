"""What a page may send to ``/exposures`` and ``/track``, beyond what any SDK key may.

Pages send batches with a client-side key, under the same origin rules as their evaluations
(:func:`~flagstaff.server.browser.guard.check_origin`), and:

* **beacons**: a batch sent with ``navigator.sendBeacon`` may carry its client-side key in the
  body (:mod:`flagstaff.browser.beacons`, shared with relays);
* **rate limits**: per key and client address, a token bucket of
  ``FLAGSTAFF_BROWSER_INGEST_BATCHES_PER_MINUTE`` batches (a burst of a quarter of that), and at
  most ``FLAGSTAFF_BROWSER_INGEST_MAX_EVENTS`` events per batch: 429 / 400 beyond;
* **secure mode**: every ``user_key`` in the batch must come with its hash in
  ``"secure_mode_hashes": {"<user_key>": "<hash>"}`` (403 otherwise), so a page cannot record
  events as another user.

Batches stay idempotent by ``batch_id`` (a retried beacon is counted once), and no SDK key can
write anything else: every management route refuses SDK keys.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flagstaff.errors import Forbidden, Invalid, RateLimited
from flagstaff.secure_mode import verify

HASHES_FIELD = "secure_mode_hashes"


class IngestLimiter:
    """Token buckets per (key id, client address), bounded in number (oldest dropped)."""

    def __init__(
        self, *, per_minute: int, max_tracked: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = max(1.0, per_minute / 4)
        self.max_tracked = max_tracked
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key_id: str, address: str) -> float | None:
        """Spend one batch; None if allowed, else the seconds until one is allowed."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((key_id, address))
            if bucket is None:
                bucket = [self.burst, now]
                self._buckets[(key_id, address)] = bucket
                while len(self._buckets) > self.max_tracked:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end((key_id, address))
                bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
                bucket[1] = now
            if bucket[0] >= 1.0:
                bucket[0] -= 1.0
                return None
            return (1.0 - bucket[0]) / self.rate


def check_rate(limiter: IngestLimiter, key_id: str, address: str) -> None:
    wait = limiter.take(key_id, address)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            "too many event batches from this page; send fewer, larger batches",
            details={"retry_after_seconds": seconds,
                     "setting": "FLAGSTAFF_BROWSER_INGEST_BATCHES_PER_MINUTE"},
        )


def check_size(body: dict[str, Any], max_events: int) -> None:
    events = body.get("events")
    if isinstance(events, list) and len(events) > max_events:
        raise Invalid(
            f"events: a client-side key sends at most {max_events} events per batch "
            f"(got {len(events)})",
            details={"field": "events", "limit": max_events,
                     "setting": "FLAGSTAFF_BROWSER_INGEST_MAX_EVENTS"},
        )


def check_secure_mode(body: dict[str, Any], secret: str, environment: str) -> None:
    """Every event's ``user_key`` must be signed (see the module docstring)."""
    hashes = body.get(HASHES_FIELD)
    if not isinstance(hashes, dict):
        raise Forbidden(
            f"environment {environment!r} is in secure mode: a batch from a page needs "
            f"{HASHES_FIELD}, each user_key's hash signed by your back end",
            details={"field": HASHES_FIELD},
        )
    events = body.get("events")
    for i, event in enumerate(events if isinstance(events, list) else ()):
        user = event.get("user_key") if isinstance(event, dict) else None
        if not isinstance(user, str):
            continue  # the batch's own validation names this event
        if not verify(secret, user, hashes.get(user)):
            raise Forbidden(
                f"events[{i}].user_key: no valid secure-mode hash for this user in {HASHES_FIELD}",
                details={"field": f"events[{i}].user_key"},
            )
