"""Tunable timings of the SDK's background synchronisation.

Every interval is configurable so that tests can run the real reconnect, polling and staleness
logic in milliseconds instead of minutes. The defaults follow the product spec: backoff base 1 s
capped at 30 s, polling after the stream has been down for 30 s, every 60 s.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Timings (seconds) of the sync thread.

    ``read_timeout`` must exceed the server's keepalive interval (15 s); docs/streaming.md asks
    clients to treat ~2.5 intervals of silence as a broken connection and reconnect.
    """

    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    healthy_after: float = 60.0
    poll_after: float = 30.0
    poll_interval: float = 60.0
    stale_after: float = 300.0
    connect_timeout: float = 5.0
    read_timeout: float = 40.0
    cache_write_interval: float = 1.0
    stream: bool = True
    # Characters: an SSE line (a put is one data line) and an event's data; over either, the
    # connection is dropped and the client resynchronises (flagstaff.sdk.stream).
    max_line: int = 16 * 2**20
    max_event: int = 64 * 2**20

    def __post_init__(self) -> None:
        for name in (
            "backoff_base",
            "backoff_cap",
            "poll_interval",
            "connect_timeout",
            "read_timeout",
            "max_line",
            "max_event",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"SyncOptions.{name} must be positive")
        for name in ("healthy_after", "poll_after", "stale_after", "cache_write_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyncOptions.{name} must not be negative")
