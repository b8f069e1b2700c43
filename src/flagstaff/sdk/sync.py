"""The background thread that keeps a client's cache in step with the server.

Order of business: fetch ``GET /sdk/flags`` once (unless a cache file already gave us a
version), then hold ``GET /stream`` open, sending ``Last-Event-ID`` so a reconnect receives
exactly the missed events. A dropped stream is retried with exponential backoff and full
jitter; while a backoff step after a dropped stream or a failure to reach the server runs,
``/health`` is probed every ``probe_interval`` so that the stream is back within about that long once the server
answers again, however long the step had grown.  Once the stream has been down for ``poll_after`` seconds the thread also polls
``/sdk/flags`` with ``If-None-Match`` every ``poll_interval`` until the stream is back.  A stream
silent for 2.5 of the server's keepalive intervals is broken: ``STALE`` is reported at once and
the stream reconnected without a backoff step.  401/403 stop the thread for good (retrying a
revoked key only adds load); 429 and 5xx honour ``Retry-After``, and are not cut short by a
probe: probing follows only dropped streams and failures to reach the server at all.

The thread is the only writer of the cache; see :mod:`flagstaff.sdk.state`.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError

from flagstaff.engine.errors import DefinitionError
from flagstaff.numerals import ascii_decimal
from flagstaff.sdk.backoff import Backoff, parse_retry_after
from flagstaff.sdk.fleet import FleetReporter
from flagstaff.sdk.listeners import ClientStatus
from flagstaff.sdk.options import SyncOptions
from flagstaff.sdk.sockets import SocketTracker
from flagstaff.sdk.state import FlagState, event_number
from flagstaff.sdk.stream import BadEvent, Change, decode_event, read_events

log = logging.getLogger("flagstaff.sdk")

USER_AGENT = "flagstaff-python-sdk"


# The stream response header naming the server's keepalive interval (docs/streaming.md).
KEEPALIVE_HEADER = "flagstaff-keepalive-seconds"


@dataclass(slots=True)
class _Outcome:
    connected: bool = False
    retry_after: float | None = None
    silent: bool = False  # no byte for the silence limit: broken, not merely quiet
    unreachable: bool = False  # no HTTP answer at all (refused, reset, DNS): worth probing


class SyncThread:
    """Owns the HTTP client and the thread; ``changed`` and ``status`` report to the Client."""

    def __init__(
        self,
        *,
        base_url: str,
        sdk_key: str,
        state: FlagState,
        options: SyncOptions,
        changed: Callable[[set[str]], None],
        status: Callable[[ClientStatus, str | None], None],
        fleet: FleetReporter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._sdk_key = sdk_key
        self._state = state
        self._options = options
        self._changed = changed
        self._status = status
        self._fleet = fleet
        self.ready = threading.Event()
        self.fatal: str | None = None
        self.streaming = False
        self.polls = 0
        self.stream_connects = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._sockets = SocketTracker()
        self._response: httpx.Response | None = None
        self._backoff = Backoff(
            base=options.backoff_base, cap=options.backoff_cap, healthy_after=options.healthy_after
        )
        self._last_ok = time.monotonic()
        self._resync = False
        self._announced_keepalive: float | None = None
        self._jitter = random.Random()
        self.probes = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stop = threading.Event()
        self._sockets = SocketTracker()
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self._sdk_key}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(
                self._options.silence_limit(), connect=self._options.connect_timeout
            ),
            event_hooks={"request": [self._sockets.attach]},
        )
        self._thread = threading.Thread(target=self._run, name="flagstaff-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """End the thread: pending requests fail at once; waits at most ``timeout`` seconds.

        Returns whether the thread has ended (it is a daemon and ends on its own otherwise).
        """
        self._stop.set()
        self._interrupt_stream()
        self._sockets.interrupt()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                return False
        self._thread = None
        return True

    def restart_after_fork(self) -> list[object]:
        """In a forked child: forget the parent's thread and connection, start afresh.

        Returns the inherited objects that must not be closed here: their sockets are shared
        with the parent, and their locks may have been held by a thread that no longer exists.
        """
        inherited: list[object] = [self._http, self._response]
        ready = self.ready.is_set()
        self.ready = threading.Event()
        if ready:
            self.ready.set()
        self._response = None
        self._thread = None
        self.streaming = False
        if self.fatal is None and not self._stop.is_set():
            self.start()
        return inherited

    def _interrupt_stream(self) -> None:
        # Closing a socket does not wake a thread blocked in recv(); shutdown() does.
        response = self._response
        if response is None:
            return
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- health ------------------------------------------------------------------------------

    def _ok(self) -> None:
        self._last_ok = time.monotonic()
        if self._state.stale:
            self._state.stale = False
            log.info("flagstaff: flag data is fresh again")
            if self._state.ready:
                self._status(ClientStatus.READY, None)

    def _check_stale(self, now: float) -> float:
        """Flip the stale flag when due; returns when it will next be due."""
        due = self._last_ok + self._options.stale_after
        if self.streaming or self._state.stale or now < due:
            return due if not self._state.stale else float("inf")
        self._report_stale(
            f"no contact with {self.base_url} for {now - self._last_ok:.0f} s", "flag data may be out of date"
        )
        return float("inf")

    def _report_stale(self, why: str, message: str) -> None:
        if self._state.stale:
            return
        self._state.stale = True
        log.warning("flagstaff: %s; serving cached flags marked STALE", why)
        self._status(ClientStatus.STALE, message)

    def _fail(self, message: str) -> None:
        self.fatal = message
        log.error("flagstaff: %s; the SDK stops syncing and serves cached or default values", message)
        self._status(ClientStatus.ERROR, message)
        self.ready.set()
        self._stop.set()

    # -- main loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug must not kill evaluation; the cache keeps serving
            log.exception("flagstaff: sync thread crashed")
        finally:
            if self._http is not None:
                self._http.close()

    def _loop(self) -> None:
        opts = self._options
        now = time.monotonic()
        self._last_ok = now
        next_stream = now if opts.stream else float("inf")
        next_poll = now + opts.poll_after if opts.stream else now
        next_probe = float("inf")
        if self._state.version is None and opts.stream:
            self._poll()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_stream:
                outcome = self._stream_once()
                if self._stop.is_set():
                    return
                now = time.monotonic()
                if outcome.connected:
                    next_poll = now + opts.poll_after
                # A silent stream already waited out its silence limit: reconnect now.
                delay = 0.0 if outcome.silent else self._backoff.next_delay()
                if outcome.retry_after is not None:
                    delay = max(delay, outcome.retry_after)
                next_stream = now + delay
                # After a stream ended (a restart closes them) or the server could not be
                # reached; one that answers with an error (a 503 while its database is down, a
                # 429 with Retry-After) is left to the backoff it asked for.
                probing = opts.probe_interval > 0 and (outcome.unreachable or outcome.connected)
                next_probe = now + opts.probe_interval if probing else float("inf")
            if next_probe <= now:
                next_probe = float("inf")
                if next_stream - now > opts.probe_interval:
                    if self._server_answers():
                        # Spread the reconnects of many clients over one probe interval.
                        soon = time.monotonic() + self._jitter.uniform(0.0, opts.probe_interval)
                        next_stream = min(next_stream, soon)
                    else:
                        next_probe = time.monotonic() + opts.probe_interval
                if self._stop.is_set():
                    return
            if now >= next_poll:
                retry_after = self._poll()
                if self._stop.is_set():
                    return
                next_poll = time.monotonic() + max(opts.poll_interval, retry_after or 0.0)
            stale_due = self._check_stale(time.monotonic())
            wake = min(next_stream, next_poll, stale_due, next_probe)
            self._stop.wait(max(0.0, wake - time.monotonic()))

    def _server_answers(self) -> bool:
        """One cheap ``GET /health``: is the server back (an answer below 500)?"""
        assert self._http is not None
        self.probes += 1
        opts = self._options
        try:
            response = self._http.get("/health", timeout=httpx.Timeout(
                opts.connect_timeout, connect=opts.connect_timeout))
        except httpx.HTTPError:
            return False
        back = response.status_code < 500
        if back:
            log.debug("flagstaff: %s answers again; reconnecting the stream", self.base_url)
        return back

    # -- stream ------------------------------------------------------------------------------

    def _stream_once(self) -> _Outcome:
        assert self._http is not None
        outcome = _Outcome()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        if self._state.version is not None and not self._resync:
            headers["Last-Event-ID"] = str(self._state.version)
        opts = self._options
        limit = opts.silence_limit(self._announced_keepalive)
        timeout = httpx.Timeout(limit, connect=opts.connect_timeout)
        try:
            with self._http.stream("GET", "/stream", headers=headers, timeout=timeout) as response:
                if response.status_code != 200:
                    outcome.retry_after = self._refused(response, "/stream")
                    return outcome
                self._learn_keepalive(response)
                self._response = response
                if self._stop.is_set():  # stop() ran before it could see this response
                    return outcome
                outcome.connected = True
                self.streaming = True
                self.stream_connects += 1
                self._resync = False
                self._backoff.connected()
                self._ok()
                log.debug("flagstaff: stream connected to %s", self.base_url)
                for event in read_events(
                    response, max_line=self._options.max_line, max_event=self._options.max_event
                ):
                    if self._stop.is_set():
                        break
                    self._last_ok = time.monotonic()
                    if event.event == "environment_deleted":
                        self._fail("the SDK key's environment was deleted on the server")
                        break
                    before = self._state.version
                    change = decode_event(event)
                    if change is not None:
                        self._apply(change)
                    else:  # unknown types are skipped but their id still counts as seen
                        self._state.advance(event.id)
                    if self._fleet is not None and self._state.version != before:
                        self._fleet.applied()
        except httpx.ReadTimeout:
            outcome.silent = not self._stop.is_set()
            if outcome.silent:
                limit = opts.silence_limit(self._announced_keepalive)
                self._report_stale(
                    f"the stream from {self.base_url} sent nothing for {limit:g} s "
                    "(not even a keepalive); reconnecting", "the stream went silent")
        except (httpx.HTTPError, SSEError, OSError) as exc:
            outcome.unreachable = isinstance(exc, httpx.TransportError | OSError)
            # A stream we ended ourselves (close()) is not a failure worth a warning.
            dropped = outcome.connected and not self._stop.is_set()
            level = logging.WARNING if dropped else logging.DEBUG
            log.log(level, "flagstaff: stream to %s failed: %s", self.base_url, exc or type(exc))
        except (BadEvent, DefinitionError) as exc:
            log.error("flagstaff: bad stream event (%s); resynchronising", exc)
            self._resync = True
        finally:
            self._response = None
            if outcome.connected:
                self.streaming = False
                self._last_ok = time.monotonic()
                self._backoff.disconnected()
        return outcome

    def _learn_keepalive(self, response: httpx.Response) -> None:
        """Take the server's keepalive interval, for this connection's silence limit too."""
        raw = response.headers.get(KEEPALIVE_HEADER)
        announced = ascii_decimal(raw.strip()) if raw else None
        if announced is None or announced <= 0 or self._options.read_timeout is not None:
            return
        self._announced_keepalive = announced
        # httpcore reads a request's ``timeout`` extension when the body is first read, which
        # has not happened yet: this connection gets the bound the server just announced.
        timeouts = response.request.extensions.get("timeout")
        if isinstance(timeouts, dict):
            timeouts["read"] = self._options.silence_limit(announced)

    def _apply(self, change: Change) -> None:
        was_ready = self._state.ready
        keys = self._state.apply(change)
        self._after_update(keys, was_ready)

    def _after_update(self, keys: set[str], was_ready: bool) -> None:
        """Tell the client what changed (cache write, listeners) and announce readiness."""
        if keys:
            # The first load is announced as READY, not as a change of every flag; the disk
            # cache still needs writing.
            self._changed(keys if was_ready else set())
        if not was_ready and self._state.ready:
            self.ready.set()
            self._status(ClientStatus.READY, None)

    # -- polling -----------------------------------------------------------------------------

    def _poll(self) -> float | None:
        """One ``GET /sdk/flags``; returns a Retry-After delay if the server asked for one."""
        assert self._http is not None
        before = self._state.version
        report = self._fleet.headers() if self._fleet is not None else {}
        headers = dict(report)
        if self._state.version is not None:
            headers["If-None-Match"] = f'"{self._state.version}"'
        self.polls += 1
        try:
            response = self._http.get("/sdk/flags", headers=headers)
        except httpx.HTTPError as exc:
            log.debug("flagstaff: polling %s failed: %s", self.base_url, exc)
            return None
        if response.status_code in (200, 304) and self._fleet is not None:
            self._fleet.carried(report)
        if response.status_code == 304:
            self._ok()
            return None
        if response.status_code != 200:
            return self._refused(response, "/sdk/flags")
        try:
            snapshot: Any = response.json()
            if not isinstance(snapshot, dict) or not isinstance(snapshot.get("flags"), dict):
                raise BadEvent("not a snapshot")
            was_ready = self._state.ready
            version = event_number(response.headers.get("etag"))
            keys = self._state.replace(snapshot, version)
        except (ValueError, BadEvent, DefinitionError) as exc:
            log.error("flagstaff: unusable snapshot from %s/sdk/flags: %s", self.base_url, exc)
            return None
        self._ok()
        self._after_update(keys, was_ready)
        if self._fleet is not None and self._state.version != before:
            self._fleet.applied()
        return None

    def _refused(self, response: httpx.Response, path: str) -> float | None:
        """Handle a non-success status; returns a Retry-After delay for 429/5xx."""
        status = response.status_code
        if status in (401, 403):
            response.read()
            self._fail(
                f"the server at {self.base_url} refused the SDK key on {path} "
                f"(HTTP {status}: {_error_message(response)})"
            )
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        log.debug("flagstaff: %s answered HTTP %s (retry after %s)", path, status, retry_after)
        return retry_after if (status == 429 or status >= 500) else None


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
