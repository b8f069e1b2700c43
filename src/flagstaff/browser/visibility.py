"""Which flags a key may evaluate: client-side keys only those marked ``client_side``.

A flag is available to client-side SDK keys (browsers, mobile apps) only when its definition
says ``client_side: true`` (off by default).  Anything else is answered exactly as a flag that
does not exist, so a page cannot even learn the names of server-only flags.  The list is
computed once per compiled snapshot.
"""

from __future__ import annotations

import threading
from typing import Any

from flagstaff.engine import ErrorCode, EvaluationDetail, Reason, Snapshot


def is_client_side(snapshot: Snapshot, key: str) -> bool:
    resolved = snapshot.flag(key)
    return isinstance(resolved, dict) and resolved.get("client_side") is True


def not_found(key: str, default: Any) -> EvaluationDetail:
    """The answer about a flag a client-side key may not see: that it does not exist."""
    return EvaluationDetail(default, None, Reason.ERROR, error_code=ErrorCode.FLAG_NOT_FOUND,
                            error_message=f"flag {key!r} not found", flag_key=key)


class ClientView:
    """``keys(snapshot, client=...)``: the evaluable flags a key of that audience sees."""

    def __init__(self) -> None:
        # environment -> (the snapshot it was computed for, its client-side keys)
        self._cache: dict[str, tuple[Snapshot, tuple[str, ...]]] = {}
        self._lock = threading.Lock()

    def keys(self, snapshot: Snapshot, *, client: bool) -> list[str] | tuple[str, ...]:
        if not client:
            return snapshot.flag_keys()
        cached = self._cache.get(snapshot.environment)
        if cached is not None and cached[0] is snapshot:
            return cached[1]
        keys = tuple(k for k in snapshot.flag_keys() if is_client_side(snapshot, k))
        with self._lock:
            self._cache[snapshot.environment] = (snapshot, keys)
        return keys
