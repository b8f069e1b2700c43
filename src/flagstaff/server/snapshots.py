"""One compiled engine snapshot per environment, kept in step with the store.

``SnapshotCache.get(environment)`` asks the store for its latest change-event id (one indexed
``max(id)`` query) and serves the cached compiled snapshot while that id has not moved.  When it
has moved by a few events the cache replays them (``store.events_since``) through the engine's
incremental ``with_flag``/``without_flag``/``with_segment``/``without_segment``, so one changed
flag recompiles only itself; after a large gap, or an environment change, it rebuilds from
``store.snapshot``.  The streaming change feed calls :meth:`SnapshotCache.apply_event` (or
:meth:`SnapshotCache.invalidate`) on every change so the common case is already up to date.

Once the feed runs it also tells the cache the newest change it has read
(:meth:`SnapshotCache.follow`), and a write served by this process marks the cache stale
(:meth:`SnapshotCache.mark_stale`, before its answer can reach the client): then
:meth:`SnapshotCache.current` answers from memory alone, with no database round trip, whenever
the entry is as new as everything the feed has read and no local write has happened since the
last look at the database.  A change made through another replica is seen within the feed's
propagation bound (docs/streaming.md, "Replicas"); one made through this process at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flagstaff.engine import Snapshot, compile_snapshot, resolve_flag
from flagstaff.server.answer_memo import AnswerMemo

if TYPE_CHECKING:
    from flagstaff.store import Store

# Replaying more events than this costs about as much as a rebuild, so rebuild instead.
MAX_REPLAY = 200


@dataclass(frozen=True, slots=True)
class CachedSnapshot:
    snapshot: Snapshot
    version: int  # id of the last change event folded into ``snapshot``
    # Encoded OFREP answers of this snapshot's outcomes (``evaluation.ofrep_single``, ``_bulk``):
    # they live and die with the snapshot.
    encoded: AnswerMemo = field(default_factory=AnswerMemo, compare=False, repr=False)


class SnapshotCache:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._entries: dict[str, CachedSnapshot] = {}
        self._lock = threading.Lock()
        # The newest change id the change feed has read (None: no feed follows the log, so
        # only the database knows), and whether this process wrote since it last asked.
        self._known: int | None = None
        self._stale = True

    def follow(self, latest: int) -> None:
        """The change feed has read every change up to ``latest``."""
        self._known = latest if self._known is None else max(self._known, latest)

    def mark_stale(self) -> None:
        """This process committed a write: ask the database before answering from memory."""
        self._stale = True

    def current(self, environment: str) -> CachedSnapshot | None:
        """The snapshot from memory if it is known to be current (no I/O), else None: then
        :meth:`get` (in a worker thread) asks the database."""
        known = self._known
        if known is None or self._stale:
            return None
        entry = self._entries.get(environment)
        if entry is None or entry.version < known:
            return None
        return entry

    def get(self, environment: str) -> CachedSnapshot:
        """The compiled snapshot of ``environment`` as of the store's latest event."""
        # Cleared before reading: a write committed after this read marks it stale again.
        self._stale = False
        latest = self._store.latest_event_id()
        if self._known is not None:
            self.follow(latest)
        entry = self._entries.get(environment)
        if entry is not None and entry.version >= latest:
            return entry
        # One builder at a time: concurrent requests after a change wait for one rebuild
        # instead of each compiling the same snapshot.
        with self._lock:
            entry = self._entries.get(environment)
            if entry is not None and entry.version >= latest:
                return entry
            entry = self._catch_up(environment, entry, latest)
            self._entries[environment] = entry
            return entry

    def at_least(self, environment: str, version: int | None) -> CachedSnapshot:
        """The snapshot of ``environment`` including change ``version`` (None: everything
        committed), read through to the store when this process has not applied it yet: a
        browser woken by a change must not be answered from before it (OFREP ADR-0008)."""
        entry = self.get(environment)
        if version is not None and entry.version >= version:
            return entry
        latest = self._store.latest_event_id()
        if entry.version >= latest:
            return entry
        with self._lock:
            current = self._entries.get(environment)
            if current is not None and current.version >= latest:
                return current
            entry = self._catch_up(environment, current, latest)
            self._entries[environment] = entry
            return entry

    def invalidate(self, environment: str | None = None) -> None:
        """Forget one environment's snapshot (or all); the next ``get`` rebuilds it."""
        with self._lock:
            if environment is None:
                self._entries.clear()
            else:
                self._entries.pop(environment, None)

    def apply_event(self, event: Any) -> None:
        """Fold one committed change event (``ChangeEvent`` or its dict) into every cached
        snapshot that is exactly one step behind it; others catch up on their next ``get``."""
        fields = event if isinstance(event, dict) else event.to_dict()
        with self._lock:
            for environment, entry in list(self._entries.items()):
                if entry.version >= fields["id"]:
                    continue
                if not _follows(entry.version, fields["id"]):
                    continue
                updated = _apply(entry.snapshot, environment, fields)
                if updated is None:
                    self._entries.pop(environment, None)
                else:
                    self._entries[environment] = CachedSnapshot(updated, fields["id"])

    def _catch_up(self, environment: str, entry: CachedSnapshot | None, latest: int) -> CachedSnapshot:
        if entry is not None and latest - entry.version <= MAX_REPLAY and not self._pruned_since(entry):
            snapshot: Snapshot | None = entry.snapshot
            version = entry.version
            for event in self._store.events_since(after_id=entry.version, limit=MAX_REPLAY + 1):
                fields = event.to_dict()
                if snapshot is None:
                    break
                snapshot = _apply(snapshot, environment, fields)
                version = fields["id"]
            if snapshot is not None and version >= latest:
                return CachedSnapshot(snapshot, version)
        return self._build(environment)

    def _pruned_since(self, entry: CachedSnapshot) -> bool:
        # Retention may have deleted events the snapshot has not seen; replay would skip them.
        oldest = self._store.oldest_event_id()
        return oldest is not None and oldest > entry.version + 1

    def _build(self, environment: str) -> CachedSnapshot:
        raw = self._store.snapshot(environment=environment)
        return CachedSnapshot(compile_snapshot(raw), int(raw["version"]))


def _follows(version: int, event_id: int) -> bool:
    # Ids may skip values (PostgreSQL sequences), so only the immediate successor is known to
    # be safe to apply blindly; anything further is replayed from the store on ``get``.
    return event_id == version + 1


def _apply(snapshot: Snapshot, environment: str, event: dict[str, Any]) -> Snapshot | None:
    """The snapshot after ``event``; None when it must be rebuilt from the store."""
    kind, key, data = event["kind"], event["key"], event["data"]
    if kind == "flag":
        if data is None or data.get("state") == "archived":
            return snapshot.without_flag(key)
        return snapshot.with_flag(resolve_flag(data, environment))
    if kind == "segment":
        return snapshot.without_segment(key) if data is None else snapshot.with_segment(data)
    if kind == "token":
        return snapshot  # a key's revocation changes no flag or segment
    return None  # environment changes: cheap and rare, rebuild
