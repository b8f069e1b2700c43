"""Which changes a page must hear about: OFREP ``refetchEvaluation`` events per environment.

A browser holds the answers of one bulk evaluation; it must re-fetch when, and only when,
something that can change them changed.  For each environment the tracker keeps a fingerprint
of every flag's configuration *as that environment resolves it* and of every segment, and
decides per change event and audience:

* **client** (client-side keys): the flag is, or was until this change, one a client-side key
  may see or one such a flag depends on (prerequisites, transitively), or the segment is used by
  one of those (through ``segment_match``, transitively), and its fingerprint changed;
* **server** (server-side keys): any flag or segment whose fingerprint changed.

So an edit in another environment (this environment's resolved configuration is unchanged), an
edit of a server-only flag, or a save that changes nothing wakes no page.  A change that wakes a
page but leaves its user's answers as they were costs that page a 304 (the bulk ETag is the
answer's hash).

Event ids are change-event ids, the same on every replica and across restarts; a page that
reconnects with ``Last-Event-ID`` gets one ``refetchEvaluation`` if a relevant change happened
since (coalesced: the latest), and nothing otherwise, so a server restart costs no refresh
storm.  For ids older than this process's tracking (it started after the page's last event), any
change in between counts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flagstaff.engine import flag_references, resolve_flag, segment_references
from flagstaff.realtime import Change, Outgoing
from flagstaff.realtime.events import dumps

CLIENT, SERVER = "client", "server"
AUDIENCES = (CLIENT, SERVER)
# A page that connects without Last-Event-ID fetched its answers an instant before: a relevant
# change this recent may have landed in between, so it is told to re-fetch (a 304 if not).
FRESH_CONNECT_SECONDS = 10.0
_VOLATILE_FLAG = ("version", "state", "created_at", "updated_at")
_VOLATILE_SEGMENT = ("version", "created_at", "updated_at")


def _fingerprint(value: dict[str, Any], volatile: tuple[str, ...]) -> str:
    return json.dumps({k: v for k, v in value.items() if k not in volatile},
                      sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class _Flag:
    fingerprint: str
    client_side: bool
    prerequisites: frozenset[str]
    segments: frozenset[str]

    @classmethod
    def of(cls, resolved: dict[str, Any]) -> _Flag:
        prerequisites, segments = flag_references(resolved)
        return cls(_fingerprint(resolved, _VOLATILE_FLAG), resolved.get("client_side") is True,
                   frozenset(prerequisites), frozenset(segments))


@dataclass(frozen=True, slots=True)
class _Segment:
    fingerprint: str
    segments: frozenset[str]

    @classmethod
    def of(cls, definition: dict[str, Any]) -> _Segment:
        return cls(_fingerprint(definition, _VOLATILE_SEGMENT),
                   frozenset(segment_references(definition)))


@dataclass(slots=True)
class _Environment:
    since: int  # the change-log position tracking started from
    version: int  # the last change folded in
    flags: dict[str, _Flag]
    segments: dict[str, _Segment]
    # audience -> (id, unix time) of the latest relevant change
    latest: dict[str, tuple[int, float]] = field(default_factory=dict)

    def client_closure(self) -> tuple[set[str], set[str]]:
        """(flags a client-side key's answers depend on, segments they use)."""
        flags = {k for k, f in self.flags.items() if f.client_side}
        stack = list(flags)
        while stack:
            flag = self.flags.get(stack.pop())
            for key in flag.prerequisites if flag else ():
                if key not in flags:
                    flags.add(key)
                    stack.append(key)
        segments: set[str] = set()
        for key in flags:
            flag = self.flags.get(key)
            if flag is not None:
                segments |= flag.segments
        stack = list(segments)
        while stack:
            segment = self.segments.get(stack.pop())
            for key in segment.segments if segment else ():
                if key not in segments:
                    segments.add(key)
                    stack.append(key)
        return flags, segments


Snapshot = Callable[[str], Awaitable[dict[str, Any]]]
Backlog = Callable[[int], Awaitable[Sequence[Change] | None]]


class RefetchTracker:
    """Per-environment relevance state, fed every committed change in id order."""

    def __init__(
        self, *, installation_id: str, clock: Callable[[], float] = time.time,
    ) -> None:
        self._etag_prefix = installation_id[:12]
        self._clock = clock
        self._environments: dict[str, _Environment] = {}
        # Environments being loaded: the changes that arrive meanwhile, replayed after.
        self._loading: dict[str, list[Change]] = {}

    def tracked(self, environment: str) -> bool:
        return environment in self._environments

    def forget(self, environment: str) -> None:
        """Stop tracking ``environment`` (its data jumped without the changes in between, as
        when a relay's upstream sends a whole new snapshot): the next connection starts
        tracking afresh, and one resuming from before that counts any change as relevant."""
        self._environments.pop(environment, None)

    async def ensure(self, environment: str, snapshot: Snapshot) -> None:
        """Start tracking ``environment`` from its current snapshot (once)."""
        if environment in self._environments or environment in self._loading:
            while environment in self._loading:  # another connection is loading it
                await asyncio.sleep(0.01)
            return
        self._loading[environment] = []
        try:
            raw = await snapshot(environment)
        except BaseException:
            del self._loading[environment]
            raise
        version = int(raw["version"])
        state = _Environment(
            since=version, version=version,
            flags={k: _Flag.of(v) for k, v in raw["flags"].items()},
            segments={k: _Segment.of(v) for k, v in raw["segments"].items()},
        )
        missed = self._loading.pop(environment)
        self._environments[environment] = state
        self._fold(environment, state, missed)

    def observe(self, events: Sequence[Change]) -> list[tuple[str, str, Outgoing]]:
        """Fold committed changes (in id order) into every tracked environment; returns the
        ``(environment, audience, event)`` notifications to send."""
        for pending in self._loading.values():
            pending.extend(events)
        out: list[tuple[str, str, Outgoing]] = []
        for environment, state in self._environments.items():
            out.extend(self._fold(environment, state, events))
        return out

    def _fold(
        self, environment: str, state: _Environment, events: Sequence[Change]
    ) -> list[tuple[str, str, Outgoing]]:
        out: list[tuple[str, str, Outgoing]] = []
        for event in events:
            if event.id <= state.version:
                continue
            state.version = event.id
            final = event.kind == "environment" and event.type == "environment_deleted" \
                and event.key == environment
            audiences = AUDIENCES if final else self._relevance(environment, state, event)
            for audience in audiences:
                stamp = event.created_at.timestamp()
                state.latest[audience] = (event.id, stamp)
                out.append((environment, audience, self._message(event.id, stamp, final=final)))
        return out

    def _relevance(self, environment: str, state: _Environment, event: Change) -> tuple[str, ...]:
        if event.kind == "flag":
            data = event.data
            gone = data is None or event.type == "flag_archived" or data.get("state") == "archived"
            new_flag = None if gone else _Flag.of(resolve_flag(data, environment))
            return _replace(state, state.flags, event.key, new_flag, side=0)
        if event.kind == "segment":
            data = event.data
            new_segment = None if data is None or event.type == "segment_deleted" \
                else _Segment.of(data)
            return _replace(state, state.segments, event.key, new_segment, side=1)
        return ()  # environments: origins and secure mode change no answer

    def _message(self, event_id: int, stamp: float, *, final: bool = False) -> Outgoing:
        data = dumps({
            "type": "refetchEvaluation",
            "etag": f'"{self._etag_prefix}-{event_id}"',
            "lastModified": int(stamp),
        })
        return Outgoing.of(event_id, "message", data, final=final)

    async def initial(
        self, environment: str, audience: str, last_event_id: int | None, backlog: Backlog,
    ) -> tuple[list[Outgoing], int]:
        """What a new connection sends first and the id it is then at: a ``refetchEvaluation``
        if the page missed a relevant change, then an id-only block so that its
        ``Last-Event-ID`` names this position (browsers dispatch nothing for it)."""
        state = self._environments[environment]
        position = state.version
        latest = state.latest.get(audience)
        missed = False
        if last_event_id is None:
            missed = latest is not None and self._clock() - latest[1] < FRESH_CONNECT_SECONDS
        elif last_event_id > position:
            missed = True  # an id from another database or a restored backup: re-fetch
        elif last_event_id >= state.since:
            missed = latest is not None and latest[0] > last_event_id
        else:
            # Before this process started tracking: any change since then may matter.
            changes = await backlog(last_event_id)
            missed = changes is None or any(c.kind in ("flag", "segment") for c in changes
                                            if c.id <= state.since) or (
                latest is not None and latest[0] > last_event_id)
        items: list[Outgoing] = []
        if missed:
            mark = latest[0] if latest is not None else position
            items.append(self._message(mark, latest[1] if latest else self._clock()))
        items.append(Outgoing(position, "position", "", f"id: {position}\n\n".encode()))
        return items, position


def _replace(
    state: _Environment, table: dict[str, Any], key: str, value: Any, *, side: int,
) -> tuple[str, ...]:
    """Put ``value`` (None: remove) in ``table``; who must refetch: everyone when the key is in
    the client-side closure (``side`` 0 flags, 1 segments) before or after, else servers only."""
    if table.get(key) == value:
        return ()
    before = state.client_closure()[side]
    _put(table, key, value)
    after = state.client_closure()[side]
    return AUDIENCES if key in before or key in after else (SERVER,)


def _put(table: dict[str, Any], key: str, value: Any) -> None:
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
