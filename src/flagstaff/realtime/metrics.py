"""The real-time series: connected clients, events sent, slow consumers, the feed's delay.

:class:`StreamMetrics` registers them in the registry it is given, so a server (or a relay)
exposes them next to its own series from one ``/metrics``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

TRANSPORTS = ("sse", "ws")


class StreamMetrics:
    """The real-time series, with their labelled children looked up once."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.stream_clients = Gauge(
            "flagstaff_stream_clients",
            "Connected real-time clients.",
            ["transport"],
            registry=registry,
        )
        self.events_sent = Counter(
            "flagstaff_stream_events_sent",
            "Events written to real-time clients, by event type.",
            ["transport", "event"],
            registry=registry,
        )
        self.slow_consumers = Counter(
            "flagstaff_stream_slow_consumers_dropped",
            "Real-time clients disconnected because they could not keep up.",
            ["transport"],
            registry=registry,
        )
        self.feed_events = Counter(
            "flagstaff_changefeed_events",
            "Change events read from the change log by this process.",
            registry=registry,
        )
        self.feed_delay = Histogram(
            "flagstaff_changefeed_delay_seconds",
            "Time from an event's commit to its fan-out by this process.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=registry,
        )
        # realtime/memory.py: malloc_trim after large frees (none without glibc).
        self.memory_trims = Counter(
            "flagstaff_memory_trims",
            "Times freed memory was given back to the operating system (malloc_trim).",
            registry=registry,
        )
        self.memory_trim_seconds = Counter(
            "flagstaff_memory_trim_seconds",
            "Time spent giving freed memory back (in a worker thread, not the event loop).",
            registry=registry,
        )
        self.memory_returned = Counter(
            "flagstaff_memory_returned_bytes",
            "Resident memory given back to the operating system by those trims.",
            registry=registry,
        )
        # Labelled children, looked up once: ``labels()`` takes a lock and builds a key on every
        # call, which the fan-out would otherwise pay per connection and per event.
        self._clients: dict[str, Gauge] = {}
        self._slow: dict[str, Counter] = {}
        self._sent: dict[tuple[str, str], Counter] = {}
        for transport in TRANSPORTS:
            # Present from the start so dashboards (and tests) see zeros, not absent series.
            self.clients(transport)
            self.slow(transport)

    def clients(self, transport: str) -> Gauge:
        child = self._clients.get(transport)
        if child is None:
            child = self._clients[transport] = self.stream_clients.labels(transport=transport)
        return child

    def slow(self, transport: str) -> Counter:
        child = self._slow.get(transport)
        if child is None:
            child = self._slow[transport] = self.slow_consumers.labels(transport=transport)
        return child

    def sent(self, transport: str, event: str) -> Counter:
        key = (transport, event)
        child = self._sent.get(key)
        if child is None:
            child = self._sent[key] = self.events_sent.labels(transport=transport, event=event)
        return child

    def trimmed(self, seconds: float, returned: int) -> None:
        """A trim took ``seconds`` and gave back ``returned`` bytes of RSS."""
        self.memory_trims.inc()
        self.memory_trim_seconds.inc(seconds)
        self.memory_returned.inc(returned)
