"""Webhook signatures: HMAC-SHA256 over ``<timestamp>.<body>`` with the subscription's secret.

Headers of every delivery::

    X-Flagstaff-Event: flag.killed
    X-Flagstaff-Delivery: 42                  (the same on every retry of this delivery)
    X-Flagstaff-Timestamp: 1735689600         (Unix seconds when this attempt was signed)
    X-Flagstaff-Signature: v1=<hex digest>

A receiver recomputes the digest over the raw body, compares in constant time and refuses
timestamps older than a few minutes (replays); docs/governance.md has the snippet.
"""

from __future__ import annotations

import hashlib
import hmac

from flagstaff.numerals import ascii_int

EVENT = "X-Flagstaff-Event"
DELIVERY = "X-Flagstaff-Delivery"
TIMESTAMP = "X-Flagstaff-Timestamp"
SIGNATURE = "X-Flagstaff-Signature"
SCHEME = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={digest.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str, *, now: float,
           tolerance: float = 300) -> bool:
    """What a receiver does (tests use it to check deliveries)."""
    seconds = ascii_int(timestamp)
    if seconds is None or abs(now - seconds) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, seconds, body), header)
