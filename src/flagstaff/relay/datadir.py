"""The relay's data directory: what it needs to start and serve with its upstream down.

```
<data-dir>/environments/<key digest>.json   the last snapshot of the environment of each key
<data-dir>/keys.json                         the SDK keys the upstream last vouched for
<data-dir>/access.json                       each environment's browser access (origins, and
                                             the secure-mode secret while secure mode is on)
```

Snapshots are the contract's (as ``GET /sdk/flags`` serves them) and keys are kept by the
SHA-256 of their secret, never the secret.  Files are written atomically (the SDK's cache
writer: temporary file, fsync, rename), at most once per ``interval`` per file however fast
changes come, on a worker thread so the event loop never waits for the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flagstaff.sdk.cache import read_snapshot, write_snapshot

log = logging.getLogger("flagstaff.relay")


class DataDir:
    def __init__(self, path: str | Path, *, interval: float = 0.5) -> None:
        self.path = Path(path)
        self.interval = interval
        self._dirty: dict[str, Callable[[], dict[str, Any] | None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def snapshot_path(self, key_digest: str) -> Path:
        return self.path / "environments" / f"{key_digest}.json"

    @property
    def keys_path(self) -> Path:
        return self.path / "keys.json"

    @property
    def access_path(self) -> Path:
        return self.path / "access.json"

    def _target(self, name: str) -> Path:
        if name == "keys":
            return self.keys_path
        if name == "access":
            return self.access_path
        return self.snapshot_path(name)

    def read_access(self) -> dict[str, Any]:
        try:
            data = json.loads(self.access_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable access file %s: %s", self.access_path, exc)
            return {}
        return data if isinstance(data, dict) else {}

    def read_snapshot(self, key_digest: str) -> dict[str, Any] | None:
        return read_snapshot(self.snapshot_path(key_digest))

    def read_keys(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.keys_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring the unreadable key list %s: %s", self.keys_path, exc)
            return {}
        keys = data.get("keys") if isinstance(data, dict) else None
        return keys if isinstance(keys, dict) else {}

    def mark(self, name: str, source: Callable[[], dict[str, Any] | None]) -> None:
        """Write ``source()`` to ``name`` (``keys``, ``access`` or a key digest) soon."""
        self._dirty[name] = source
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="flagstaff-relay-datadir")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()  # what changed last is on disk before the relay exits

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            await asyncio.sleep(self.interval)

    async def flush(self) -> None:
        dirty, self._dirty = self._dirty, {}
        for name, source in dirty.items():
            value = source()  # copied on the loop, written on a thread
            if value is None:
                continue
            target = self._target(name)
            try:
                await asyncio.to_thread(write_snapshot, target, value)
            except OSError as exc:
                log.warning("could not write %s: %s", target, exc)
