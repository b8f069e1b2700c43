"""The on-disk snapshot cache that lets a process start while the server is down.

Writes are atomic (a temporary file in the same directory, fsync, ``os.replace``), so a crash
mid-write leaves the previous good file. A background writer coalesces bursts of events: it
writes the latest state at most once per interval instead of once per event, which matters at
10,000 flags where one write costs tens of milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("flagstaff.sdk")


def write_snapshot(path: str | os.PathLike[str], snapshot: dict[str, Any]) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(snapshot, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_snapshot(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The cached snapshot, or None if there is none or it is unreadable (logged)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("flagstaff: ignoring unreadable cache file %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("flags"), dict):
        log.warning("flagstaff: ignoring cache file %s: not a snapshot", path)
        return None
    return data


class CacheWriter:
    """Writes ``source()`` to ``path`` on a daemon thread whenever ``mark_dirty`` was called."""

    def __init__(
        self, path: str | os.PathLike[str], source: Callable[[], dict[str, Any]], interval: float
    ) -> None:
        self.path = path
        self._source = source
        self._interval = interval
        self._cond = threading.Condition()
        self._dirty = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="flagstaff-cache", daemon=True)
        self._thread.start()

    def mark_dirty(self) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify()

    def stop(self, timeout: float | None = None) -> bool:
        """Write pending state and end the thread; waits at most ``timeout`` seconds."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._thread = None
        return True

    def forget_thread(self) -> None:
        """After fork: the parent's thread does not exist in the child."""
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._dirty and not self._stopping:
                    self._cond.wait()
                stopping, dirty = self._stopping, self._dirty
                self._dirty = False
            if dirty:
                self._write()
            if stopping:
                return
            with self._cond:
                # Coalesce: events arriving during this pause are written together.
                self._cond.wait_for(lambda: self._stopping, timeout=self._interval)

    def _write(self) -> None:
        try:
            write_snapshot(self.path, self._source())
        except Exception:
            log.exception("flagstaff: could not write cache file %s", self.path)
