"""Telling the server which change this client has applied (the fleet view, docs/relay.md).

Each client is one **instance**, named by a random id picked at start (and again in a forked
child); the id is not a secret, and the server files it under the client's SDK key.  What it
costs, cheapest first:

- **Piggy-backed**: every ``/sdk/flags`` poll and every analytics post (evaluation counts go out
  once a minute) carries ``Flagstaff-Instance`` and ``Flagstaff-Version`` headers.  Each such
  request that succeeds counts as a report.
- **After applying a change**: one small ``POST /fleet/reports`` after a random delay of up to
  ``SyncOptions.report_jitter`` (1 s), so a thousand clients that received the same kill do not
  report in the same millisecond.  This is what makes a kill's convergence visible within about
  a second and a half of the clients applying it.
- **Heartbeat**: when nothing else carried a report for ``SyncOptions.report_interval`` (60 s),
  the same POST, so a quiet streaming client is not shown as stale.
- **Leaving**: ``close()`` (and interpreter exit) says ``left``, so the instance disappears from
  the view at once instead of turning stale.

Reports never block evaluation: they are sent from this module's own thread.  A refused key
(401/403) or a server without the fleet view (404) stops reporting; other failures are retried
with backoff.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

import flagstaff
from flagstaff.fleet.reports import report_headers
from flagstaff.sdk.backoff import Backoff
from flagstaff.sdk.sockets import SocketTracker

log = logging.getLogger("flagstaff.sdk")

SDK_NAME = f"flagstaff-python/{flagstaff.__version__}"
LEAVE_TIMEOUT = 1.0


def new_instance_id() -> str:
    return uuid.uuid4().hex


class FleetReporter:
    """Reports one client's applied version; thread-safe, one background thread."""

    def __init__(
        self,
        *,
        base_url: str,
        sdk_key: str,
        version: Callable[[], int | None],
        interval: float = 60.0,
        jitter: float = 1.0,
        kind: str = "sdk",
        timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._sdk_key = sdk_key
        self._version = version
        self.interval = interval
        self.jitter = jitter
        self.kind = kind
        self._timeout = timeout
        self.instance = new_instance_id()
        self.reported: int | None = None  # the version the server last confirmed
        self.sent = 0
        self.failed = 0
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._cond = threading.Condition()
        self._stopping = False
        self._given_up = False
        self._registered = False
        self._ack_due = float("inf")
        self._last_contact = float("-inf")
        self._backoff = Backoff(base=1.0, cap=self.interval, healthy_after=0.0)
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._sockets = SocketTracker()

    # -- called by other threads -------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """The report headers for a request going out now (empty before any data)."""
        if self._given_up:
            return {}
        return report_headers(self.instance, self._version(), kind=self.kind)

    def carried(self, headers: dict[str, str]) -> None:
        """A request that carried ``headers`` succeeded: that was a report."""
        if not headers:
            return
        with self._cond:
            self._last_contact = time.monotonic()

    def applied(self) -> None:
        """The client's version moved: report it after a random delay of up to ``jitter``."""
        with self._cond:
            due = time.monotonic() + random.uniform(0.0, self.jitter)
            if due < self._ack_due:
                self._ack_due = due
                self._cond.notify()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._http = httpx.Client(
            base_url=self.base_url, timeout=self._timeout,
            headers={"Authorization": f"Bearer {self._sdk_key}", "User-Agent": SDK_NAME},
            event_hooks={"request": [self._sockets.attach]},
        )
        self._thread = threading.Thread(target=self._run, name="flagstaff-fleet", daemon=True)
        self._thread.start()

    def stop(self, *, leave: bool = True, timeout: float = LEAVE_TIMEOUT) -> bool:
        """End the thread; with ``leave``, tell the server this instance is gone.  Takes at most
        ``timeout`` seconds (a report in flight is interrupted); returns whether it finished."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            if self._stopping:
                return True
            self._stopping = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():  # a report is hanging: cut it off
                self._sockets.interrupt()
                thread.join(0.5)
        self._thread = None
        http, self._http = self._http, None
        if http is None:
            return True
        left_in_time = deadline - time.monotonic()
        try:
            if leave and self._registered and not self._given_up and left_in_time > 0:
                self._post(http, left=True, timeout=min(LEAVE_TIMEOUT, left_in_time))
        except Exception as exc:  # leaving is a courtesy: the server forgets us eventually
            log.debug("flagstaff: could not report leaving: %s", exc)
            return False
        finally:
            http.close()
        return thread is None or not thread.is_alive()

    def restart_after_fork(self) -> list[object]:
        """In a forked child: a new instance (the parent keeps its own), a fresh connection."""
        inherited: list[object] = [self._http]
        running = self._thread is not None and not self._stopping
        self.instance = new_instance_id()
        self.reported = None
        self._init_runtime()
        if running:
            self.start()
            self.applied()
        return inherited

    # -- the thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        if self._stopping or self._given_up:
                            return
                        now = time.monotonic()
                        due = min(self._ack_due, self._last_contact + self.interval)
                        if self._version() is None:
                            due = self._ack_due if self._ack_due < float("inf") else now + self.interval
                        if now >= due:
                            break
                        self._cond.wait(due - now)
                    self._ack_due = float("inf")
                if self._version() is not None:
                    self._report()
        except Exception:  # never let a bug here reach the application
            log.exception("flagstaff: the fleet reporter stopped")

    def _report(self) -> None:
        http = self._http
        if http is None:
            return
        version = self._version()
        try:
            status = self._post(http, version=version)
        except httpx.HTTPError as exc:
            status, problem = 0, str(exc) or type(exc).__name__
        else:
            problem = f"HTTP {status}"
        if 200 <= status < 300:
            self.sent += 1
            with self._cond:
                self._registered = True
                self.reported = version
                self._last_contact = time.monotonic()
                self._backoff.attempt = 0
                if self._version() != version:  # it moved while we were sending
                    self._ack_due = min(self._ack_due, time.monotonic())
            return
        self.failed += 1
        if 400 <= status < 500 and status != 429:
            # Refused key (the sync thread says so loudly), a server without the fleet view,
            # or a report it cannot read: retrying would only add load.
            log.info("flagstaff: fleet reports stopped (%s)", problem)
            self._given_up = True
            return
        delay = self._backoff.next_delay()
        log.debug("flagstaff: fleet report failed (%s); retrying in %.1f s", problem, delay)
        with self._cond:
            self._ack_due = min(self._ack_due, time.monotonic() + delay)

    def _post(
        self, http: httpx.Client, *, version: int | None = None, left: bool = False,
        timeout: float | None = None,
    ) -> int:
        report: dict[str, Any] = {
            "instance": self.instance, "kind": self.kind,
            "version": self._version() if left else version,
            "sdk": SDK_NAME, "host": socket.gethostname()[:255], "pid": os.getpid(),
        }
        if left:
            report["left"] = True
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = http.post("/fleet/reports", json={"reports": [report]}, **kwargs)
        return response.status_code
