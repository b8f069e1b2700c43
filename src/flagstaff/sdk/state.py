"""The client's flag cache: a compiled engine Snapshot plus the raw data it was built from.

There is one writer (the sync thread, or the constructor for bootstrap and offline data) and
any number of readers. Readers only load ``snapshot``, a reference to an immutable compiled
Snapshot that the writer swaps atomically, so evaluation takes no lock. The raw definitions
are kept for the disk cache and for working out which flags a change affected.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flagstaff.engine import Snapshot, compile_snapshot, resolve_flag
from flagstaff.numerals import ascii_int
from flagstaff.sdk.stream import Change


def event_number(event_id: str | int | None) -> int | None:
    """Event ids are monotonic integers; anything else is not comparable."""
    if event_id is None:
        return None
    if isinstance(event_id, int):
        return event_id
    return ascii_int(event_id.strip().strip('"').removeprefix("W/").strip('"'))


class FlagState:
    def __init__(self, environment: str | None = None) -> None:
        self.snapshot: Snapshot | None = None
        self.environment = environment
        self.version: int | None = None
        self._stale = False
        # Called (outside the lock) after every snapshot swap and stale flip, so the client can
        # rebuild its evaluation functions; see flagstaff.sdk.evaluators.
        self.on_swap: Callable[[], None] | None = None
        self._flags: dict[str, dict[str, Any]] = {}
        self._segments: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def reinit_after_fork(self) -> None:
        self._lock = threading.Lock()

    @property
    def stale(self) -> bool:
        """Set by the sync thread when neither stream nor poll has succeeded for too long."""
        return self._stale

    @stale.setter
    def stale(self, value: bool) -> None:
        if value != self._stale:
            self._stale = value
            self._swapped()

    def _swapped(self) -> None:
        if self.on_swap is not None:
            self.on_swap()

    @property
    def ready(self) -> bool:
        return self.snapshot is not None

    def raw(self) -> dict[str, Any]:
        """A consistent copy of the cached snapshot in the contract's §3 shape."""
        with self._lock:
            return {
                "environment": self.environment,
                "version": self.version,
                "flags": dict(self._flags),
                "segments": dict(self._segments),
            }

    def replace(self, snapshot: Mapping[str, Any], version: int | None = None) -> set[str]:
        """Install a whole snapshot; returns the keys of flags that changed.

        Raises the engine's DefinitionError (leaving the cache untouched) on a bad snapshot.
        """
        flags = {str(k): dict(v) for k, v in (snapshot.get("flags") or {}).items()}
        segments = {str(k): dict(v) for k, v in (snapshot.get("segments") or {}).items()}
        environment = snapshot.get("environment") or self.environment or ""
        if version is None:
            version = event_number(snapshot.get("version"))
        compiled = compile_snapshot(
            {"environment": environment, "version": version or 0, "flags": flags,
             "segments": segments}
        )
        with self._lock:
            old_flags, old_segments = self._flags, self._segments
            self._flags, self._segments = flags, segments
            self.environment, self.version = environment, version
            self.snapshot = compiled
        self._swapped()
        changed = {k for k in old_flags.keys() | flags.keys() if old_flags.get(k) != flags.get(k)}
        changed_segments = {
            k for k in old_segments.keys() | segments.keys()
            if old_segments.get(k) != segments.get(k)
        }
        return changed | self._flags_using(changed_segments)

    def advance(self, event_id: str | None) -> None:
        """Remember an event id without a change (an event type this SDK does not know)."""
        number = event_number(event_id)
        if number is not None and self.snapshot is not None and number > (self.version or 0):
            with self._lock:
                self.version = number

    def apply(self, change: Change) -> set[str]:
        """Apply one incremental change; returns the keys of flags it may have changed.

        Events at or below the cached version were already applied (a catch-up overlapping the
        snapshot) and are skipped, which keeps replays idempotent.
        """
        number = event_number(change.event_id)
        if number is not None and self.version is not None and number <= self.version:
            return set()
        if change.action == "put":
            assert change.payload is not None
            return self.replace(change.payload, number)
        snapshot = self.snapshot
        if snapshot is None:
            return set()
        key = change.key or ""
        if change.action == "upsert_flag":
            assert change.payload is not None
            flag = dict(change.payload)
            if "environments" in flag:
                flag = resolve_flag(flag, self.environment or "")
            compiled = snapshot.with_flag(flag)
            touched = {key}
        elif change.action == "remove_flag":
            compiled, flag, touched = snapshot.without_flag(key), {}, {key}
        elif change.action == "upsert_segment":
            assert change.payload is not None
            compiled, flag = snapshot.with_segment(dict(change.payload)), {}
            touched = set()
        else:
            compiled, flag, touched = snapshot.without_segment(key), {}, set()
        with self._lock:
            if change.action == "upsert_flag":
                self._flags[key] = flag
            elif change.action == "remove_flag":
                self._flags.pop(key, None)
            elif change.action == "upsert_segment":
                assert change.payload is not None
                self._segments[key] = dict(change.payload)
            else:
                self._segments.pop(key, None)
            if number is not None:
                self.version = number
            self.snapshot = compiled
        self._swapped()
        if change.action.endswith("segment"):
            touched = self._flags_using({key})
        return touched

    def _flags_using(self, segment_keys: Iterable[str]) -> set[str]:
        """Flags whose rules name one of the segments, directly or through other segments."""
        pending = set(segment_keys)
        if not pending:
            return set()
        affected_segments: set[str] = set()
        while pending:
            affected_segments |= pending
            pending = {
                key for key, segment in self._segments.items()
                if key not in affected_segments and _names_any(segment, affected_segments)
            }
        return {key for key, flag in self._flags.items() if _names_any(flag, affected_segments)}


def _names_any(definition: Mapping[str, Any], segments: set[str]) -> bool:
    for rule in definition.get("rules") or ():
        for condition in rule.get("conditions") or ():
            if condition.get("operator") == "segment_match" and any(
                value in segments for value in condition.get("values") or ()
            ):
                return True
    return False
