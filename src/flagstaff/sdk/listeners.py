"""Change and status listeners.

Callbacks run on the sync thread after a change has been applied, never on the evaluation
path. A failing callback is logged and swallowed so that one bad listener can neither stop the
sync thread nor hide a change from the other listeners.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger("flagstaff.sdk")

ChangeCallback = Callable[[str], object]
StatusCallback = Callable[["ClientStatus", "str | None"], object]


class ClientStatus(enum.Enum):
    NOT_READY = "NOT_READY"
    READY = "READY"
    STALE = "STALE"
    ERROR = "ERROR"


class Listeners:
    """Thread-safe registry; ``notify_*`` works on a copy so callbacks may (un)register."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[ChangeCallback, str | None]] = []
        self._statuses: list[StatusCallback] = []

    def reinit_after_fork(self) -> None:
        # The parent's lock may have been held by another thread at fork time.
        self._lock = threading.Lock()

    def add_change(self, callback: ChangeCallback, key: str | None) -> Callable[[], None]:
        entry = (callback, key)
        with self._lock:
            self._changes.append(entry)

        def remove() -> None:
            with self._lock:
                if entry in self._changes:
                    self._changes.remove(entry)

        return remove

    def add_status(self, callback: StatusCallback) -> Callable[[], None]:
        with self._lock:
            self._statuses.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._statuses:
                    self._statuses.remove(callback)

        return remove

    def notify_changes(self, keys: Iterable[str]) -> None:
        with self._lock:
            entries = list(self._changes)
        if not entries:
            return
        for key in sorted(keys):
            for callback, wanted in entries:
                if wanted is None or wanted == key:
                    _call(callback, key)

    def notify_status(self, status: ClientStatus, message: str | None) -> None:
        with self._lock:
            callbacks = list(self._statuses)
        for callback in callbacks:
            _call(callback, status, message)


def _call(callback: Callable[..., object], *args: object) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("flagstaff listener %r raised; ignored", callback)
