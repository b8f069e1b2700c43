"""Recording exposures, metric events and evaluation counts off the hot path.

What an evaluating thread does is kept to the minimum, because it runs on every flag check:

- **evaluation counts**: ``count(detail)``, a bound ``list.append`` of the (shared, precompiled)
  detail object. The event thread drains the list every ``count_drain_interval`` with
  ``del buf[:n]`` (atomic under the GIL: appends made meanwhile land after index ``n`` and are
  kept), tallies it per ``(flag_key, variant)`` (``Counter(map(attrgetter(...)))``) and
  posts the totals every ``counts_interval``. No evaluation is lost or counted twice under
  threads (no read-modify-write of a shared integer on the hot path), at the price of 8 bytes
  per evaluation between drains. Tallying costs ~100 ns per item, more than the evaluation
  itself, so a drain holding more than ``count_sample`` evaluations (10,000 per second by
  default) tallies a uniform random sample of that size and scales it to the exact total: the
  total is exact, the split per (flag, variant) is then an estimate (relative error about
  1/sqrt(share x count_sample)), and a (flag, variant) seen at all reports at least 1.
  Evaluations that end in an error (unknown flag, type mismatch) and ``all_flags`` are not
  counted.
- **exposures**: for an evaluation that must be recorded (``in_experiment`` by default),
  ``expose(detail, context)`` appends ``(detail, user_key, time)`` to a deque when it has room
  and otherwise counts a drop: it never blocks. Deduplication by (user, flag, variant) within
  a flush window and the building of event dicts happen on the event thread.
- ``track`` events are rare and are built at once.

One thread per client (``flagstaff-events``) flushes every ``flush_interval`` seconds, or as
soon as ``flush_at`` exposures are waiting, when ``flush_now`` asks, and once more when stopped.
Everything that sends runs on that thread, so a caller of ``flush_now`` or ``stop`` only waits
for it, and never longer than its timeout (docs/sdk.md, "Shutting down").
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal

from flagstaff.engine import EvaluationDetail
from flagstaff.sdk.sinks import ExposureSink, HttpSink, utc_iso

log = logging.getLogger("flagstaff.sdk")

ExposureMode = Literal["experiments", "all", "off"]
_COUNT_KEY = attrgetter("flag_key", "variant")
_now = time.time
MAX_BATCH = 10_000  # the server's limit per batch (contract §9)
# A builtin that drops its argument: the count function when counting is switched off.
discard: Callable[[EvaluationDetail], None] = deque[EvaluationDetail](maxlen=0).append


@dataclass(frozen=True, slots=True)
class EventOptions:
    """Timings and limits of analytics recording (seconds and event counts)."""

    flush_interval: float = 10.0
    flush_at: int = 100
    max_queue: int = 10_000
    counts_interval: float = 60.0
    count_drain_interval: float = 1.0
    count_sample: int = 10_000
    count_evaluations: bool = True

    def __post_init__(self) -> None:
        for name in ("flush_interval", "counts_interval", "count_drain_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EventOptions.{name} must be positive")
        if self.flush_at < 1 or self.max_queue < 1 or self.count_sample < 1:
            raise ValueError("EventOptions.flush_at, max_queue and count_sample must be at least 1")


def targeting_key(context: Mapping[str, Any] | None) -> str | None:
    if not context:
        return None
    for name in ("targeting_key", "targetingKey", "key"):
        value = context.get(name)
        if value is not None:
            return str(value)
    return None


class Recorder:
    """Queues, aggregates and ships one client's analytics through an :class:`ExposureSink`."""

    def __init__(
        self, sink: ExposureSink, *, environment: Callable[[], str | None],
        mode: ExposureMode = "experiments", options: EventOptions | None = None,
    ) -> None:
        if mode not in ("experiments", "all", "off"):
            raise ValueError(f"exposures must be 'experiments', 'all' or 'off', not {mode!r}")
        self.sink = sink
        self.mode: ExposureMode = mode
        self.options = options or EventOptions()
        self._environment = environment
        self._max_queue, self._flush_at = self.options.max_queue, self.options.flush_at
        self.dropped = 0  # exposures and track events dropped on a full queue (approximate)
        self.sent_exposures = 0
        self.sampled_drains = 0  # drains whose counts were estimated from a sample
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._flush_requests: deque[_FlushRequest] = deque()
        self._final_flush = True
        self._stopped = False
        self._queue: deque[tuple[EvaluationDetail, Any, float]] = deque()
        self._queue_append = self._queue.append
        self._track: deque[dict[str, Any]] = deque()
        self.count_buffer: list[EvaluationDetail] = []
        self.count: Callable[[EvaluationDetail], None] = (
            self.count_buffer.append if self.options.count_evaluations else discard
        )
        self._counts: dict[tuple[str, str], float] = {}  # estimates are fractional
        self._window_start = time.time()
        self._seen: set[tuple[str | None, str | None, str | None]] = set()
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.RLock()  # serialises drains and flushes (thread, close, tests)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.final_delivery = False

    # -- hot path ----------------------------------------------------------------------------

    def expose(self, detail: EvaluationDetail, context: Mapping[str, Any] | None) -> None:
        """Queue one exposure; called by the evaluating thread, so only an append.

        The targeting key is read now (the caller may reuse its context dict) but turned into
        a string on the event thread.
        """
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.dropped += 1
            return
        user = None
        if context:
            user = context.get("targeting_key")
            if user is None:
                user = context.get("targetingKey")
                if user is None:
                    user = context.get("key")
        self._queue_append((detail, user, _now()))
        if len(queue) >= self._flush_at and not self._wake.is_set():
            self._wake.set()

    def track(self, metric: str, context: Mapping[str, Any] | None, value: float | None) -> None:
        if len(self._track) >= self.options.max_queue:
            self.dropped += 1
            return
        self._track.append({"metric": metric, "user_key": targeting_key(context),
                            "value": value, "timestamp": utc_iso(time.time())})
        if len(self._track) >= self.options.flush_at:
            self._wake.set()

    # -- thread ------------------------------------------------------------------------------

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flagstaff-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._finish()

    def _loop(self) -> None:
        opts = self.options
        now = time.monotonic()
        next_flush, next_drain = now + opts.flush_interval, now + opts.count_drain_interval
        next_counts = now + opts.counts_interval
        while not self._stop.is_set():
            now = time.monotonic()
            self._wake.wait(max(0.0, min(next_flush, next_drain, next_counts) - now))
            if self._stop.is_set():
                return
            try:
                now = time.monotonic()
                if self._flush_requests:
                    self._wake.clear()
                    self._answer(self._take_requests(), self._flush_all())
                if now >= next_drain:
                    self.drain_counts()
                    next_drain = now + opts.count_drain_interval
                window_over = now >= next_flush
                if self._wake.is_set() or window_over:
                    self._wake.clear()
                    self.flush(new_window=window_over)
                    if window_over:
                        next_flush = now + opts.flush_interval
                if now >= next_counts:
                    self.flush_counts()
                    next_counts = now + opts.counts_interval
            except Exception:  # a broken user sink must not stop the thread
                log.exception("flagstaff: flushing analytics failed")

    def _finish(self) -> None:
        """The thread's last duty: the final flush (unless refused), then close the sink."""
        delivered = self._flush_all() if self._final_flush else True
        self._answer(self._take_requests(), delivered)
        # close() reports on everything recorded, not only the last flush: a batch dropped
        # earlier (its retries ran out during an outage) was not delivered either.
        dropped_earlier = isinstance(self.sink, HttpSink) and self.sink.failed > 0
        self.final_delivery = delivered and not dropped_earlier
        try:
            self.sink.close()
        except Exception:
            log.exception("flagstaff: closing the analytics sink failed")

    def _flush_all(self) -> bool:
        """Send everything queued now; whether it was all delivered."""
        failed_before = self.sink.failed if isinstance(self.sink, HttpSink) else 0
        try:
            self.flush(new_window=True)
            self.flush_counts()
        except Exception:
            log.exception("flagstaff: flushing analytics failed")
            return False
        return not isinstance(self.sink, HttpSink) or self.sink.failed == failed_before

    def _take_requests(self) -> list[_FlushRequest]:
        taken = []
        while self._flush_requests:
            taken.append(self._flush_requests.popleft())
        return taken

    @staticmethod
    def _answer(requests: list[_FlushRequest], delivered: bool) -> None:
        for request in requests:
            request.delivered = delivered
            request.done.set()

    def flush_now(self, timeout: float) -> bool:
        """Have the event thread send everything queued; wait at most ``timeout`` seconds.

        Returns whether all of it was delivered in time.  What is not delivered yet keeps
        being sent in the background (with the sink's usual retries).
        """
        thread = self._thread
        if thread is threading.current_thread():  # asked from a sink's send: do it here
            return self._flush_all()
        if thread is None or not thread.is_alive():
            return not (self._queue or self._pending or self._track)
        request = _FlushRequest()
        self._flush_requests.append(request)
        self._wake.set()
        return request.done.wait(max(0.0, timeout)) and request.delivered

    def stop(self, *, final_flush: bool = True, timeout: float | None = None) -> bool:
        """End the event thread after a final flush (unless ``final_flush`` is False).

        Waits at most ``timeout`` seconds (None: until done); an HTTP sink then gives up its
        request in flight.  Returns whether everything was delivered in time.
        """
        if self._stopped:
            return self.final_delivery
        self._stopped = True
        self._final_flush = final_flush
        sink = self.sink if isinstance(self.sink, HttpSink) else None
        if sink is not None:
            if timeout is not None:
                sink.deadline = time.monotonic() + timeout
            if not final_flush:
                sink.abort_retries()
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:  # never started: finish on a thread anyway, so the bound holds
            thread = threading.Thread(target=self._finish, name="flagstaff-events", daemon=True)
            thread.start()
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        if thread.is_alive():
            if sink is not None:
                sink.abort_retries()
            log.warning("flagstaff: analytics were not delivered within %.1f s and were "
                        "dropped (%d event(s) still queued)", timeout or 0.0, self.queued())
            return False
        return self.final_delivery

    def queued(self) -> int:
        """Exposures and metric events not yet handed to the sink (approximate)."""
        return len(self._queue) + len(self._pending) + len(self._track)

    def restart_after_fork(self) -> list[object]:
        """In a forked child: drop the parent's queued data (the parent sends it) and restart."""
        inherited: list[object] = []
        if isinstance(self.sink, HttpSink):
            inherited.append(self.sink.restart_after_fork())
        was_running = self._thread is not None
        self._init_runtime()
        if was_running:
            self.start()
        return inherited

    # -- aggregation (event thread) ----------------------------------------------------------

    def drain_counts(self) -> None:
        with self._lock:
            buf = self.count_buffer
            n = len(buf)
            if not n:
                return
            chunk = buf[:n]
            del buf[:n]
            limit, scale = self.options.count_sample, 1.0
            if n > limit:
                # Tallying costs ~100 ns per item even in C (a tuple and its hash); past the
                # limit a uniform random sample estimates the split, scaled to the exact total.
                chunk, scale = random.sample(chunk, limit), n / limit
                self.sampled_drains += 1
            counts = self._counts
            for key, hits in Counter(map(_COUNT_KEY, chunk)).items():
                counts[key] = counts.get(key, 0.0) + hits * scale

    def flush(self, *, new_window: bool = False) -> None:
        """Deduplicate queued exposures into events and send them (and queued track events)."""
        with self._lock:
            environment = self._environment()
            queue, seen, pending = self._queue, self._seen, self._pending
            while queue:
                detail, raw_user, at = queue.popleft()
                user = None if raw_user is None else str(raw_user)
                ident = (user, detail.flag_key, detail.variant)
                if ident in seen:
                    continue
                seen.add(ident)
                pending.append({
                    "flag_key": detail.flag_key, "variant": detail.variant, "user_key": user,
                    "timestamp": utc_iso(at), "reason": detail.reason.value,
                    "environment": environment, "flag_version": detail.version,
                    "in_experiment": detail.in_experiment,
                })
            if pending and (new_window or len(pending) >= self.options.flush_at):
                self._pending = []
                for start in range(0, len(pending), MAX_BATCH):
                    part = pending[start:start + MAX_BATCH]
                    self.sink.send("exposures", {"batch_id": str(uuid.uuid4()), "events": part})
                    self.sent_exposures += len(part)
            if new_window:
                seen.clear()
            tracked = []
            while self._track:
                tracked.append(self._track.popleft())
            for start in range(0, len(tracked), MAX_BATCH):
                self.sink.send("track", {"batch_id": str(uuid.uuid4()),
                                         "events": tracked[start:start + MAX_BATCH]})

    def flush_counts(self) -> None:
        with self._lock:
            self.drain_counts()
            counts, self._counts = self._counts, {}
            start, end = self._window_start, time.time()
            self._window_start = end
            rows = [{"flag_key": k, "variant": v, "count": max(1, round(n))}
                    for (k, v), n in sorted(counts.items(), key=_row_order) if v is not None]
            for first in range(0, len(rows), MAX_BATCH):
                self.sink.send("evaluation-counts", {
                    "batch_id": str(uuid.uuid4()), "window_start": utc_iso(start),
                    "window_end": utc_iso(end), "counts": rows[first:first + MAX_BATCH]})

    def counts(self) -> dict[tuple[str, str], int]:
        """Evaluations counted since the last report (drains the buffer first)."""
        with self._lock:
            self.drain_counts()
            return {k: max(1, round(n)) for k, n in self._counts.items() if k[1] is not None}


class _FlushRequest:
    """A caller waiting for the event thread to flush."""

    __slots__ = ("delivered", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.delivered = False


def _row_order(item: tuple[tuple[str, str], float]) -> tuple[str, str]:
    (key, variant), _ = item
    return (key or "", variant or "")

