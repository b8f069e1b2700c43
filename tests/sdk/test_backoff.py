from __future__ import annotations

import random
import statistics
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from flagstaff.sdk.backoff import Backoff, parse_retry_after


def test_ceiling_doubles_from_base_up_to_cap() -> None:
    backoff = Backoff(base=1.0, cap=30.0, healthy_after=60.0, rng=random.Random(1))
    ceilings = []
    for _ in range(8):
        ceilings.append(backoff.ceiling())
        backoff.next_delay()
    assert ceilings == [1, 2, 4, 8, 16, 30, 30, 30]


def test_full_jitter_spreads_delays_over_the_whole_range() -> None:
    rng = random.Random(7)
    delays = []
    for _ in range(2000):
        backoff = Backoff(base=1.0, cap=30.0, healthy_after=60.0, rng=rng)
        backoff.attempt = 10  # ceiling is the cap
        delays.append(backoff.next_delay())
    assert min(delays) >= 0 and max(delays) <= 30
    assert statistics.mean(delays) == pytest.approx(15, abs=1.0)
    # Uniform over [0, 30]: every 3-second bucket is used.
    assert len({int(d // 3) for d in delays}) == 10


def test_healthy_connection_resets_the_sequence_but_a_short_one_does_not() -> None:
    backoff = Backoff(base=1.0, cap=30.0, healthy_after=10.0, rng=random.Random(3))
    for _ in range(4):
        backoff.next_delay()
    backoff.connected(now=100.0)
    backoff.disconnected(now=105.0)
    assert backoff.attempt == 4
    backoff.connected(now=200.0)
    backoff.disconnected(now=210.0)
    assert backoff.attempt == 0
    assert backoff.ceiling() == 1.0


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 30.0
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(past, now=now.timestamp()) == 0.0


def test_retry_after_seconds_are_ascii_digits() -> None:
    from flagstaff.sdk.backoff import parse_retry_after

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("1.5") == 1.5
    for value in ["\u0667", "\uff17", "²", "-3", "inf", "nan"]:
        assert parse_retry_after(value) is None, value
