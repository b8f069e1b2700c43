"""Tunable timings of the SDK's background synchronisation.

Every interval is configurable so that tests can run the real reconnect, polling and staleness
logic in milliseconds instead of minutes. The defaults follow the product spec: backoff base 1 s
capped at 30 s, polling after the stream has been down for 30 s, every 60 s.
"""

from __future__ import annotations

from dataclasses import dataclass

# docs/streaming.md: treat ~2.5 keepalive intervals of silence as a broken connection.
SILENT_KEEPALIVES = 2.5


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """Timings (seconds) of the sync thread.

    A stream silent for :data:`SILENT_KEEPALIVES` keepalive intervals is broken
    (docs/streaming.md): the client reports ``STALE`` and reconnects at once.  The interval is
    the one the server announces on the stream (``Flagstaff-Keepalive-Seconds``), else
    ``keepalive_interval``.  ``read_timeout``, when set, replaces that bound and also bounds every
    other request; unset, other requests get the same 2.5 intervals of ``keepalive_interval``.

    While waiting to reconnect, the client asks the server's ``/health`` every
    ``probe_interval`` seconds (one cheap unauthenticated request; 0 turns probing off) and
    reconnects within a random fraction of that interval once it answers, instead of sleeping
    out the rest of a backoff step that may have grown to ``backoff_cap`` during a long outage.
    """

    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    healthy_after: float = 60.0
    poll_after: float = 30.0
    poll_interval: float = 60.0
    stale_after: float = 300.0
    connect_timeout: float = 5.0
    read_timeout: float | None = None
    keepalive_interval: float = 15.0
    probe_interval: float = 1.0
    cache_write_interval: float = 1.0
    stream: bool = True
    # Characters: an SSE line (a put is one data line) and an event's data; over either, the
    # connection is dropped and the client resynchronises (flagstaff.sdk.stream).
    max_line: int = 16 * 2**20
    max_event: int = 64 * 2**20
    # The fleet view (flagstaff.sdk.fleet): report the applied version to the server, at most
    # ``report_jitter`` seconds after applying a change, and at least every ``report_interval``.
    report: bool = True
    report_interval: float = 60.0
    report_jitter: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "backoff_base",
            "backoff_cap",
            "poll_interval",
            "connect_timeout",
            "keepalive_interval",
            "max_line",
            "max_event",
            "report_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"SyncOptions.{name} must be positive")
        for name in ("healthy_after", "poll_after", "stale_after", "cache_write_interval",
                     "report_jitter", "probe_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"SyncOptions.{name} must not be negative")
        if self.read_timeout is not None and self.read_timeout <= 0:
            raise ValueError("SyncOptions.read_timeout must be positive")

    def silence_limit(self, announced: float | None = None) -> float:
        """Seconds without a byte after which a stream is broken: ``read_timeout`` if set,
        else 2.5 keepalive intervals (the server's ``announced`` one when known)."""
        if self.read_timeout is not None:
            return self.read_timeout
        return SILENT_KEEPALIVES * (announced or self.keepalive_interval)
