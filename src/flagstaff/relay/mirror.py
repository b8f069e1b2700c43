"""One environment as the relay holds it: the upstream's snapshot and the changes since.

An :class:`EnvironmentMirror` is what the relay knows of one environment: the contract's
snapshot (as ``/sdk/flags`` serves it), the same snapshot compiled for evaluation, and the last
``retain`` changes in id order.  The upstream follower (``relay.upstream``) feeds it what the
upstream's ``/stream`` sends; the mirror is then the
:class:`~flagstaff.realtime.ChangeSource` of the environment's
:class:`~flagstaff.realtime.ChangeFeed`, so the relay's ``/stream`` and ``/ws`` are the
server's own transports, with the same catch-up rules (``Last-Event-ID``).

The upstream sends flags already resolved for the environment; a change is kept as a
one-environment definition (:func:`as_definition`) so ``realtime.events.protocol_event``
re-encodes it to exactly what the upstream sent.  Ids are the upstream's change-log ids, so a
client may move between the server and its relays and keep its ``Last-Event-ID``.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flagstaff.engine import Snapshot, compile_snapshot
from flagstaff.errors import Unavailable

# Changes kept for clients that reconnect with Last-Event-ID; older ones get a fresh ``put``.
RETAIN = 10_000

# The per-environment fields of a resolved flag (engine.references.resolve_flag).
_ENVIRONMENT_FIELDS = ("enabled", "prerequisites", "targets", "rules", "fallthrough", "experiment")


@dataclass(frozen=True, slots=True)
class RelayedChange:
    """One upstream change in the shape of :class:`flagstaff.realtime.Change`."""

    id: int
    created_at: datetime
    type: str
    kind: str
    key: str
    data: Any


def as_definition(resolved: Mapping[str, Any], environment: str) -> dict[str, Any]:
    """A resolved flag as the one-environment definition that resolves back to it."""
    flag = {k: v for k, v in resolved.items() if k not in _ENVIRONMENT_FIELDS}
    flag["environments"] = {
        environment: {k: resolved[k] for k in _ENVIRONMENT_FIELDS if k in resolved}
    }
    return flag


class EnvironmentMirror:
    """The relay's copy of one environment (a :class:`~flagstaff.realtime.ChangeSource`)."""

    def __init__(self, *, key_digest: str, retain: int = RETAIN) -> None:
        # The digest of the SDK key this environment is followed with (names its data file).
        self.key_digest = key_digest
        self.environment: str | None = None
        self._raw: dict[str, Any] | None = None
        self._compiled: Snapshot | None = None
        self._log: deque[RelayedChange] = deque(maxlen=retain)
        # Every change up to ``_base`` is in the snapshot but no longer (or never) in the log.
        self._base = 0
        self._wake: Callable[[], None] | None = None
        # Called after the snapshot changed (persistence, resync of open streams).
        self.on_change: Callable[[EnvironmentMirror, bool], None] | None = None
        self.deleted = False
        # The upstream refused the relay's key (revoked): the environment is no longer served.
        self.rejected = False

    # -- state ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._raw is not None

    @property
    def version(self) -> int:
        return 0 if self._raw is None else int(self._raw["version"])

    def raw(self) -> dict[str, Any] | None:
        """The contract snapshot (not to be mutated by the caller)."""
        return self._raw

    def compiled(self) -> Snapshot | None:
        if self._compiled is None and self._raw is not None:
            self._compiled = compile_snapshot(self._raw)
        return self._compiled

    # -- what the upstream sends ---------------------------------------------------------

    def put(self, snapshot: Mapping[str, Any]) -> None:
        """A whole snapshot: from the upstream's ``put``, the data directory or a file.

        Open streams of a snapshot that replaced another may have missed changes (the
        upstream could not replay them): ``on_change`` is told to resync them."""
        environment, version = str(snapshot["environment"]), int(snapshot["version"])
        raw: dict[str, Any] = {
            "environment": environment,
            "version": version,
            "flags": dict(snapshot["flags"]),
            "segments": dict(snapshot.get("segments") or {}),
        }
        replaced = self._raw is not None and raw != self._raw
        self.environment = environment
        self._raw = raw
        self._compiled = None
        self._log.clear()
        self._base = version
        self.deleted = False
        self._changed(resync=replaced)

    def apply(self, event_id: int, event: str, payload: Mapping[str, Any]) -> bool:
        """One upstream event (``flag_updated`` ...); False when it is not understood."""
        raw = self._raw
        env = self.environment
        if raw is None or env is None or event_id <= raw["version"]:
            return event_id <= self.version  # a repeat: nothing to do
        key = str(payload.get("key", ""))
        now = datetime.now(UTC)
        change: RelayedChange
        if event == "flag_updated" and isinstance(payload.get("flag"), dict):
            flag = dict(payload["flag"])
            raw["flags"] = {**raw["flags"], key: flag}
            change = RelayedChange(event_id, now, event, "flag", key, as_definition(flag, env))
            if self._compiled is not None:
                self._compiled = self._compiled.with_flag(flag)
        elif event in ("flag_archived", "flag_deleted"):
            raw["flags"] = {k: v for k, v in raw["flags"].items() if k != key}
            change = RelayedChange(event_id, now, "flag_archived", "flag", key, None)
            if self._compiled is not None:
                self._compiled = self._compiled.without_flag(key)
        elif event == "segment_updated" and isinstance(payload.get("segment"), dict):
            segment = dict(payload["segment"])
            raw["segments"] = {**raw["segments"], key: segment}
            change = RelayedChange(event_id, now, event, "segment", key, segment)
            if self._compiled is not None:
                self._compiled = self._compiled.with_segment(segment)
        elif event == "segment_deleted":
            raw["segments"] = {k: v for k, v in raw["segments"].items() if k != key}
            change = RelayedChange(event_id, now, event, "segment", key, None)
            if self._compiled is not None:
                self._compiled = self._compiled.without_segment(key)
        elif event == "environment_deleted":
            change = RelayedChange(event_id, now, event, "environment", key, None)
            self.deleted = True
        else:
            return False
        raw["version"] = event_id
        if self._compiled is not None:
            self._compiled = self._compiled.with_version(event_id)
        if len(self._log) == self._log.maxlen and self._log:
            self._base = self._log[0].id
        self._log.append(change)
        self._changed(resync=False)
        return True

    def reject(self) -> None:
        """The upstream refused the key this environment is followed with."""
        self.rejected = True
        self._changed(resync=True)

    def _changed(self, *, resync: bool) -> None:
        if self._wake is not None:
            self._wake()
        if self.on_change is not None:
            self.on_change(self, resync)

    def copy(self) -> dict[str, Any] | None:
        """A deep copy of the snapshot, for writing it out on another thread."""
        return None if self._raw is None else copy.deepcopy(self._raw)

    # -- the ChangeSource the environment's feed reads -----------------------------------

    async def latest_event_id(self) -> int:
        return self.version

    async def oldest_event_id(self) -> int | None:
        return self._base + 1

    async def events_since(self, *, after_id: int, limit: int) -> Sequence[RelayedChange]:
        if after_id >= self.version:
            return []
        found: list[RelayedChange] = []
        for change in self._log:
            if change.id > after_id:
                found.append(change)
                if len(found) >= limit:
                    break
        return found

    async def snapshot(self, *, environment: str) -> dict[str, Any]:
        if self._raw is None:
            raise Unavailable("the relay has no data for this environment yet")
        return self._raw

    async def watch(self, wake: Callable[[], None]) -> None:
        # The follower calls ``wake`` on every change; nothing to wait for here.
        self._wake = wake
