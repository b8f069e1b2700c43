"""Consistent percentage bucketing (docs/evaluation.md, "Bucketing"; never change silently).

``bucket = (murmur3_x86_32(utf8("{salt}.{value}"), seed=0) as unsigned * 100_000) >> 32``,
a number in ``[0, 100_000)``: thousandths of a percent, with no modulo bias.  Variations take
consecutive ranges in declared order, so growing a rollout only ever adds users.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import mmh3

BUCKETS = 100_000


def murmur3_32(data: bytes | str, seed: int = 0) -> int:
    """Unsigned MurmurHash3 x86 32-bit (a ``str`` is hashed as its UTF-8 bytes)."""
    return mmh3.hash(data, seed, False)


def hash32(salt: str, value: str) -> int:
    """The bucketing hash: ``murmur3_32(utf8("{salt}.{value}"), seed=0)``."""
    return murmur3_32(f"{salt}.{value}")


def bucket(salt: str, value: str) -> int:
    """The bucket in ``[0, 100_000)`` of ``value`` under ``salt``."""
    return (hash32(salt, value) * BUCKETS) >> 32


def bucket_value(value: object) -> str | None:
    """The string hashed for a bucketing attribute: strings as-is, integers in decimal.

    Anything else (missing, null, bool, float, list, object) has no bucketing value.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def range_ends(weights_thousandths: Sequence[int]) -> list[int]:
    """Exclusive upper bound of each variation's range, in declared order."""
    ends = []
    total = 0
    for weight in weights_thousandths:
        total += weight
        ends.append(total)
    return ends


def variation_index(ends: Sequence[int], b: int) -> int:
    """Index of the variation whose range holds bucket ``b`` (zero-weight ones are skipped)."""
    return bisect_right(ends, b)
