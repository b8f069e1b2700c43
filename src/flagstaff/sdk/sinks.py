"""Where the SDK's analytics go: exposures, metric events and evaluation counts (contract §9).

A sink receives whole batches, each the exact body of the server's ingestion call:

- ``send("exposures", {"batch_id", "events": [...]})``
- ``send("track", {"batch_id", "events": [...]})``
- ``send("evaluation-counts", {"batch_id", "window_start", "window_end", "counts": [...]})``

``ExposureSink`` is the whole interface (``send`` and ``close``), so a user can route events to
their own pipeline. ``send`` runs on the SDK's event thread, never on an evaluating thread, and
may block or raise (the batch is then dropped and logged, never retried forever).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

from flagstaff.sdk.backoff import Backoff, parse_retry_after
from flagstaff.sdk.sockets import SocketTracker

if TYPE_CHECKING:
    from flagstaff.sdk.fleet import FleetReporter

log = logging.getLogger("flagstaff.sdk")

KINDS = ("exposures", "track", "evaluation-counts")


@runtime_checkable
class ExposureSink(Protocol):
    """Receives batches of analytics events; implement it to send them elsewhere."""

    def send(self, kind: str, batch: Mapping[str, Any]) -> None:
        """Deliver one batch. ``kind`` is ``exposures``, ``track`` or ``evaluation-counts``."""

    def close(self) -> None:
        """Release resources; called once by ``Client.close()`` after the final flush."""


class MemorySink:
    """Keeps every batch in memory (tests)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        self._lock = threading.Lock()

    def send(self, kind: str, batch: Mapping[str, Any]) -> None:
        with self._lock:
            self.batches.append((kind, dict(batch)))

    def close(self) -> None:
        self.closed = True

    def events(self, kind: str = "exposures") -> list[dict[str, Any]]:
        """Every event (or count) of one kind, in the order sent."""
        field = "counts" if kind == "evaluation-counts" else "events"
        with self._lock:
            return [e for k, b in self.batches if k == kind for e in b[field]]


class JsonlSink:
    """Appends one JSON object per event to a file: ``{"kind": ..., "batch_id": ..., **event}``.

    Evaluation counts also carry ``window_start`` and ``window_end``. Each batch is written with
    one ``write`` on a file opened in append mode, so several processes can share the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def send(self, kind: str, batch: Mapping[str, Any]) -> None:
        extra: dict[str, Any] = {"kind": kind, "batch_id": batch.get("batch_id")}
        if kind == "evaluation-counts":
            extra["window_start"], extra["window_end"] = batch["window_start"], batch["window_end"]
            items = batch["counts"]
        else:
            items = batch["events"]
        text = "".join(json.dumps({**extra, **item}, separators=(",", ":")) + "\n" for item in items)
        if text:
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(text)

    def close(self) -> None:
        pass


class HttpSink:
    """POSTs batches to the Flagstaff server (``/exposures``, ``/track``, ``/evaluation-counts``).

    5xx, 429 and connection errors are retried with exponential backoff and full jitter, honouring
    ``Retry-After``, always with the same ``batch_id``: the server counts a batch id once, so a
    retry after a lost response cannot double count. 4xx other than 429 are not retried.
    While ``deadline`` (a ``time.monotonic()`` instant, set by a bounded flush or close) is
    set, no request outlives it and no retry is scheduled past it; :meth:`abort_retries` also
    interrupts a request in flight.
    """

    def __init__(
        self,
        base_url: str,
        sdk_key: str,
        *,
        timeout: float = 5.0,
        attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._sdk_key = sdk_key
        self._timeout = timeout
        self.attempts = max(1, attempts)
        self._backoff_base, self._backoff_cap = backoff_base, backoff_cap
        self._stop = threading.Event()
        self._sockets = SocketTracker()
        self._http = self._new_client()
        self.deadline: float | None = None
        self.sent = 0
        self.failed = 0
        # Set by the Client: batches then also carry its fleet report (flagstaff.sdk.fleet).
        self.fleet: FleetReporter | None = None

    def _new_client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, timeout=self._timeout,
            headers={"Authorization": f"Bearer {self._sdk_key}",
                     "User-Agent": "flagstaff-python-sdk"},
            event_hooks={"request": [self._sockets.attach]},
        )

    def restart_after_fork(self) -> object:
        """In a forked child: a fresh connection pool; returns the inherited one (not closed)."""
        self._sockets = SocketTracker()
        inherited, self._http = self._http, self._new_client()
        self._stop = threading.Event()
        return inherited

    def send(self, kind: str, batch: Mapping[str, Any]) -> None:
        # One delay sequence per batch; a batch never "reconnects", so it never resets.
        backoff = Backoff(base=self._backoff_base, cap=self._backoff_cap, healthy_after=math.inf)
        tried = 0
        for attempt in range(1, self.attempts + 1):
            retry_after: float | None = None
            timeout = self._remaining(self._timeout)
            if timeout <= 0 or self._stop.is_set():
                break
            tried = attempt
            try:
                fleet = self.fleet
                headers = fleet.headers() if fleet is not None else {}
                response = self._http.post(f"/{kind}", json=batch, headers=headers,
                                           timeout=timeout)
                status = response.status_code
                if status < 300:
                    self.sent += 1
                    if fleet is not None:
                        fleet.carried(headers)
                    return
                if status != 429 and status < 500:
                    self.failed += 1
                    log.error("flagstaff: %s batch refused (HTTP %s): %s", kind, status,
                              response.text[:200])
                    return
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                problem = f"HTTP {status}"
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
            if attempt == self.attempts or self._stop.is_set():
                break
            wait = max(backoff.next_delay(), retry_after or 0.0)
            if self._remaining(wait) < wait:
                break  # the retry would start after the deadline
            log.debug("flagstaff: %s batch failed (%s); retry %d in %.2f s", kind, problem,
                      attempt, wait)
            if self._stop.wait(wait):
                break
        self.failed += 1
        log.warning("flagstaff: dropping a %s batch of %d after %d attempt(s)", kind,
                    len(batch.get("events") or batch.get("counts") or ()), tried)

    def _remaining(self, wanted: float) -> float:
        deadline = self.deadline
        return wanted if deadline is None else min(wanted, deadline - time.monotonic())

    def abort_retries(self) -> None:
        """Give up now: a request in flight fails and no retry follows (used by close())."""
        self._stop.set()
        self._sockets.interrupt()

    def close(self) -> None:
        self._http.close()


# (whole second, its formatted prefix), replaced as one tuple so threads never see a mix.
_last_second: tuple[int, str] = (-1, "")


def utc_iso(epoch: float) -> str:
    """``2026-01-02T03:04:05.678Z`` from a Unix time."""
    global _last_second
    whole = int(epoch)
    cached = _last_second
    if cached[0] != whole:
        cached = _last_second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{cached[1]}.{int((epoch - whole) * 1000):03d}Z"
