"""From a version histogram to "97 % of 1,240 SDK instances have it; 3 stale for > 5 min".

The store answers one grouped query (:class:`VersionCount` rows: how many instances of a kind
are at each applied version, and how many of those have gone quiet); everything else is
arithmetic here, so the API, ``/metrics`` and the console agree to the instance.

Words, used the same everywhere:

- an instance **has** change *N* when its applied version is at least *N* (ids only grow, and a
  snapshot at version *N* contains every change up to *N*);
- **current**: it has the latest change that reaches SDKs;
- **stale**: not heard from for longer than the stale limit (it may be gone, or cut off and
  still serving old values); stale instances count in the total until they are forgotten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class VersionCount:
    """Instances of one kind in one environment at one applied version (None: no data yet)."""

    environment: str
    kind: str
    version: int | None
    instances: int
    stale: int
    first_heard_ms: int
    last_heard_ms: int


@dataclass(frozen=True, slots=True)
class Convergence:
    """How far one change (``target``) has reached the instances of one kind."""

    target: int
    instances: int = 0
    have: int = 0
    stale: int = 0
    stale_without: int = 0  # stale and without the change: the ones to worry about
    oldest_version: int | None = None
    last_heard_ms: int | None = None
    oldest_heard_ms: int | None = None

    @property
    def missing(self) -> int:
        return self.instances - self.have

    @property
    def percent(self) -> float:
        """Share that has the change, 100.0 only when every instance has it."""
        if not self.instances:
            return 100.0
        share = 100.0 * self.have / self.instances
        return min(share, 99.9) if self.have < self.instances else 100.0

    @property
    def complete(self) -> bool:
        return self.have == self.instances

    def to_dict(self) -> dict[str, Any]:
        return {
            "instances": self.instances,
            "current": self.have,
            "behind": self.instances - self.have,
            "percent": round(self.percent, 1),
            "stale": self.stale,
            "stale_behind": self.stale_without,
            "oldest_version": self.oldest_version,
            "last_heard_ms": self.last_heard_ms,
            "oldest_heard_ms": self.oldest_heard_ms,
        }


def converge(rows: Iterable[VersionCount], *, target: int) -> Convergence:
    """Add up ``rows`` (one kind, any environments) against change ``target``."""
    instances = have = stale = stale_without = 0
    oldest: int | None = None
    last_heard: int | None = None
    oldest_heard: int | None = None
    unversioned = False
    for row in rows:
        instances += row.instances
        stale += row.stale
        if row.version is not None and row.version >= target:
            have += row.instances
        else:
            stale_without += row.stale
        if row.version is None:
            unversioned = unversioned or row.instances > 0
        elif oldest is None or row.version < oldest:
            oldest = row.version
        last_heard = row.last_heard_ms if last_heard is None else max(last_heard, row.last_heard_ms)
        oldest_heard = (row.first_heard_ms if oldest_heard is None
                        else min(oldest_heard, row.first_heard_ms))
    return Convergence(
        target=target, instances=instances, have=have, stale=stale, stale_without=stale_without,
        oldest_version=oldest, last_heard_ms=last_heard, oldest_heard_ms=oldest_heard,
    )


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def sentence(sdks: Convergence, relays: Convergence, *, stale_minutes: float) -> str:
    """The console's line for one change, e.g. "97 % of 1,240 SDK instances have it; 3 stale
    for > 5 min; 2 of 2 relays"."""
    limit = f"{stale_minutes:g} min"
    if not sdks.instances and not relays.instances:
        return "No SDK instance or relay has reported yet"
    parts: list[str] = []
    if sdks.instances:
        share = f"{sdks.percent:.1f}".removesuffix(".0")
        verb = "has" if sdks.instances == 1 else "have"
        parts.append(f"{share} % of {_count(sdks.instances, 'SDK instance')} {verb} it")
        if sdks.stale_without:
            parts.append(f"{sdks.stale_without:,} stale for > {limit}")
    else:
        parts.append("no SDK instance has reported")
    if relays.instances:
        text = f"{relays.have:,} of {_count(relays.instances, 'relay')}"
        if relays.stale_without:
            text += f" ({relays.stale_without:,} stale for > {limit})"
        parts.append(text)
    return "; ".join(parts)
