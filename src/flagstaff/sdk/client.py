"""The SDK client: local evaluation from an in-memory cache kept fresh by a background thread.

Evaluation never touches the network or a lock. ``bool``, ``string``, ``number``, ``json`` and
``detail`` are functions rebuilt by the writer whenever the snapshot or the stale state changes
(:mod:`flagstaff.sdk.evaluators`), so a call is one frame over the current compiled Snapshot;
an evaluation count and, for experiments, an exposure are queued for the event thread
(:mod:`flagstaff.sdk.recorder`). Nothing in evaluation raises; a missing flag, a wrong type or
missing data returns the caller's default with an error code. Before any data has arrived, calls return the default with error ``PROVIDER_NOT_READY``
unless a cache file (``cache_path``), a ``bootstrap`` snapshot or an offline flag file was loaded.

Evaluation is synchronous but non-blocking, so it is safe to call directly from async code
(FastAPI, Starlette); only waiting for the first snapshot needs ``await
client.wait_until_ready_async()``.
"""

from __future__ import annotations

import asyncio
import atexit
import builtins
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from flagstaff.engine import EvaluationDetail, FlagType, resolve_flag
from flagstaff.sdk.cache import CacheWriter, read_snapshot
from flagstaff.sdk.evaluators import build
from flagstaff.sdk.fleet import FleetReporter
from flagstaff.sdk.listeners import ChangeCallback, ClientStatus, Listeners, StatusCallback
from flagstaff.sdk.options import SyncOptions
from flagstaff.sdk.recorder import EventOptions, ExposureMode, Recorder, discard
from flagstaff.sdk.sinks import ExposureSink, HttpSink
from flagstaff.sdk.state import FlagState
from flagstaff.sdk.sync import SyncThread

log = logging.getLogger("flagstaff.sdk")

# Seconds that close() and flush() wait at most: below the usual shutdown grace periods
# (gunicorn 30 s, Kubernetes 30 s, uvicorn's default wait for lifespan shutdown).
CLOSE_TIMEOUT = 5.0

_EMPTY: Mapping[str, Any] = {}


class _BoolEval(Protocol):
    def __call__(self, key: str, context: Mapping[str, Any] | None = ..., default: bool = ...) -> bool: ...


class _StringEval(Protocol):
    def __call__(self, key: str, context: Mapping[str, Any] | None = ..., default: str = ...) -> str: ...


class _NumberEval(Protocol):
    def __call__(
        self, key: str, context: Mapping[str, Any] | None = ..., default: float = ...
    ) -> float: ...


class _JsonEval(Protocol):
    def __call__(self, key: str, context: Mapping[str, Any] | None = ..., default: Any = ...) -> Any: ...


class _DetailEval(Protocol):
    """Value, variant, reason, rule and error of one evaluation.

    Reason is ``STALE`` while the cache is out of contact with the server for longer than the
    staleness limit (the value is still the cached flag's).  The flag's type is checked against
    ``expected_type`` or, without it, the type of ``default`` (bool, str, int/float, dict/list):
    a mismatch returns the default with ``TYPE_MISMATCH``, as ``bool()``/``string()``/... do.
    A default of None checks no type.
    """

    def __call__(
        self, key: str, context: Mapping[str, Any] | None = ..., default: Any = ..., *,
        expected_type: FlagType | None = ...,
    ) -> EvaluationDetail: ...

_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()
# Objects inherited across fork() are kept alive, never closed, in the child: their sockets
# belong to the parent's connections too, and closing them could disturb the parent.
_inherited_after_fork: list[object] = []


class Client:
    """A Flagstaff client for one server-side SDK key (one environment).

    ``Client(url, sdk_key=...)`` starts syncing at once in a daemon thread;
    ``Client.offline(path)`` evaluates a local flag file and never connects.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        sdk_key: str | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        bootstrap: Mapping[str, Any] | None = None,
        offline_file: str | os.PathLike[str] | None = None,
        environment: str = "production",
        options: SyncOptions | None = None,
        exposures: ExposureMode = "experiments",
        event_sink: ExposureSink | None = None,
        event_options: EventOptions | None = None,
    ) -> None:
        self._options = options or SyncOptions()
        self._state = FlagState()
        self._rebuild_lock = threading.Lock()
        self._recorder: Recorder | None = None
        self._listeners = Listeners()
        self._closed = False
        self._sync: SyncThread | None = None
        self._fleet: FleetReporter | None = None
        self._cache: CacheWriter | None = None
        self._status = ClientStatus.NOT_READY
        self._status_message: str | None = None

        if offline_file is not None:
            self._load_offline(offline_file, environment)
        elif bootstrap is not None:
            self._state.replace(bootstrap)
        elif cache_path is not None:
            cached = read_snapshot(cache_path)
            if cached is not None:
                try:
                    self._state.replace(cached)
                    log.info("flagstaff: serving %d flags from cache %s", len(cached["flags"]), cache_path)
                except ValueError as exc:
                    log.warning("flagstaff: ignoring cache %s: %s", cache_path, exc)
        if self._state.ready:
            self._status = ClientStatus.READY
        online = offline_file is None and base_url is not None
        if online and not sdk_key:
            raise ValueError("sdk_key is required when a base_url is given")
        if event_sink is None and online:
            assert base_url is not None and sdk_key is not None
            event_sink = HttpSink(base_url, sdk_key)
        if event_sink is not None:
            self._recorder = Recorder(
                event_sink, environment=lambda: self._state.environment, mode=exposures,
                options=event_options,
            )
            self._recorder.start()
            _live_clients.add(self)
        elif exposures not in ("experiments", "all", "off"):
            raise ValueError(f"exposures must be 'experiments', 'all' or 'off', not {exposures!r}")
        self._state.on_swap = self._rebuild
        self._rebuild()
        if not online:
            return
        assert base_url is not None and sdk_key is not None
        if cache_path is not None:
            self._cache = CacheWriter(cache_path, self._state.raw, self._options.cache_write_interval)
            self._cache.start()
        if self._options.report:
            self._fleet = FleetReporter(
                base_url=base_url, sdk_key=sdk_key, version=lambda: self._state.version,
                interval=self._options.report_interval, jitter=self._options.report_jitter,
            )
            if self._recorder is not None and isinstance(self._recorder.sink, HttpSink):
                self._recorder.sink.fleet = self._fleet
            self._fleet.start()
        self._sync = SyncThread(
            base_url=base_url,
            sdk_key=sdk_key,
            state=self._state,
            options=self._options,
            changed=self._on_changed,
            status=self._set_status,
            fleet=self._fleet,
        )
        if self._state.ready:
            self._sync.ready.set()
        _live_clients.add(self)
        self._sync.start()

    @classmethod
    def offline(
        cls,
        path: str | os.PathLike[str],
        environment: str = "production",
        *,
        exposures: ExposureMode = "experiments",
        event_sink: ExposureSink | None = None,
    ) -> Client:
        """A client that evaluates a local YAML/JSON flag file (tests, CI, air-gapped hosts).

        It records nothing unless given an ``event_sink`` (e.g. a ``MemorySink`` in tests).
        """
        return cls(
            offline_file=path, environment=environment, exposures=exposures, event_sink=event_sink
        )

    def _load_offline(self, path: str | os.PathLike[str], environment: str) -> None:
        from flagstaff.flagfile import load_file

        loaded = load_file(Path(path))
        self._state.replace(
            {
                "environment": environment,
                "version": 0,
                "flags": {f["key"]: resolve_flag(f, environment) for f in loaded.flags},
                "segments": {s["key"]: s for s in loaded.segments},
            }
        )

    # -- evaluation ---------------------------------------------------------------------------
    # ``bool``, ``string``, ``number``, ``json`` and ``detail`` are functions stored on the
    # instance by ``_rebuild`` (see flagstaff.sdk.evaluators): one frame per call.
    bool: _BoolEval
    string: _StringEval
    number: _NumberEval
    json: _JsonEval
    detail: _DetailEval

    def _rebuild(self) -> None:
        """Point the evaluation functions at the current snapshot, stale state and recorder."""
        with self._rebuild_lock:
            recorder = None if self._closed else self._recorder
            evaluators = build(
                self._state.snapshot,
                stale=self._state.stale,
                count=recorder.count if recorder is not None else discard,
                expose=recorder.expose if recorder is not None and recorder.mode != "off" else None,
                expose_all=recorder is not None and recorder.mode == "all",
            )
            self.bool, self.string, self.number, self.json, self.detail = evaluators

    def track(
        self, metric: str, context: Mapping[str, Any] | None = None, value: float | None = None
    ) -> None:
        """Record a metric event for experiments: a conversion (``value`` None) or a number.

        Batched and sent in the background like exposures (``POST /track``); never raises
        into the caller and never blocks (a full queue drops and counts).
        """
        recorder = self._recorder
        if recorder is None or self._closed:
            log.debug("flagstaff: track(%r) ignored: no event sink or client closed", metric)
            return
        if value is not None and (isinstance(value, builtins.bool)
                                  or not isinstance(value, int | float)):
            log.warning("flagstaff: track(%r): value must be a number or None, not %r",
                        metric, value)
            return
        recorder.track(metric, context, value)

    def flush(self, timeout: float = CLOSE_TIMEOUT) -> builtins.bool:
        """Send queued exposures, metric events and evaluation counts now.

        Waits at most ``timeout`` seconds and returns whether everything was delivered; what
        is not delivered yet keeps being sent in the background.
        """
        if self._recorder is None:
            return True
        return self._recorder.flush_now(timeout)

    async def aflush(self, timeout: float = CLOSE_TIMEOUT) -> builtins.bool:
        """``flush`` for asyncio code: waits without blocking the event loop."""
        return await asyncio.to_thread(self.flush, timeout)

    @property
    def recorder(self) -> Recorder | None:
        """The analytics recorder (None when events go nowhere, e.g. offline without a sink)."""
        return self._recorder

    def all_flags(self, context: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every flag's value for the context (empty before the first snapshot)."""
        return {key: d.value for key, d in self.all_details(context).items()}

    def all_details(self, context: Mapping[str, Any] | None = None) -> dict[str, EvaluationDetail]:
        snapshot = self._state.snapshot
        if snapshot is None:
            return {}
        return snapshot.evaluate_all(context or _EMPTY)

    def client_side_details(self, context: Mapping[str, Any] | None = None) -> dict[str, EvaluationDetail]:
        """Like :meth:`all_details`, for the flags marked ``client_side`` only: what a browser's
        client-side key may see (:func:`flagstaff.sdk.browser.browser_bootstrap`)."""
        snapshot = self._state.snapshot
        if snapshot is None:
            return {}
        ctx = context or _EMPTY
        return {key: snapshot.evaluate(key, ctx) for key in snapshot.flag_keys()
                if _is_client_side(snapshot.flag(key))}

    # -- status ------------------------------------------------------------------------------

    @property
    def ready(self) -> builtins.bool:
        return self._state.ready

    @property
    def stale(self) -> builtins.bool:
        return self._state.stale

    @property
    def status(self) -> ClientStatus:
        return self._status

    @property
    def error(self) -> str | None:
        """Why syncing stopped for good (e.g. the SDK key was refused), else None."""
        return self._sync.fatal if self._sync is not None else None

    @property
    def version(self) -> int | None:
        """The change-event id the cache is at."""
        return self._state.version

    @property
    def instance(self) -> str | None:
        """The random id this client reports to the fleet view under (None: not reporting)."""
        return self._fleet.instance if self._fleet is not None else None

    def wait_until_ready(self, timeout: float | None = None) -> builtins.bool:
        """Block until flag data is loaded; False on timeout or on a fatal error (see ``error``)."""
        if self._state.ready:
            return True
        if self._sync is None:
            return False
        self._sync.ready.wait(timeout)
        return self._state.ready

    async def wait_until_ready_async(self, timeout: float | None = None) -> builtins.bool:
        """``wait_until_ready`` for asyncio code: waits without blocking the event loop."""
        if self._state.ready or self._sync is None or self._sync.fatal is not None:
            return self._state.ready
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def wake(status: ClientStatus, message: str | None) -> None:
            if status in (ClientStatus.READY, ClientStatus.ERROR):
                loop.call_soon_threadsafe(_resolve, done)

        remove = self._listeners.add_status(wake)
        try:
            if not (self._state.ready or self._sync.fatal is not None):
                await asyncio.wait_for(asyncio.shield(done), timeout)
        except TimeoutError:
            pass
        finally:
            remove()
        return self._state.ready

    # -- listeners ---------------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback, key: str | None = None) -> Callable[[], None]:
        """Call ``callback(flag_key)`` after a flag (or ``key`` only) changes; returns remover.

        Callbacks run on the sync thread, after the new data is visible to evaluations.
        """
        return self._listeners.add_change(callback, key)

    def on_status(self, callback: StatusCallback) -> Callable[[], None]:
        """Call ``callback(status, message)`` on READY, STALE and ERROR transitions."""
        return self._listeners.add_status(callback)

    def _on_changed(self, keys: set[str]) -> None:
        if self._cache is not None:
            self._cache.mark_dirty()
        if keys:
            self._listeners.notify_changes(keys)

    def _set_status(self, status: ClientStatus, message: str | None) -> None:
        self._status, self._status_message = status, message
        recorder = self._recorder
        if status is ClientStatus.ERROR and recorder is not None and isinstance(recorder.sink, HttpSink):
            # The server refused the key: it would refuse every batch too.
            self._recorder = None
            recorder.stop(final_flush=False)
            self._rebuild()
        if status is ClientStatus.ERROR and self._fleet is not None:
            self._fleet.stop(leave=False)
        self._listeners.notify_status(status, message)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, timeout: float = CLOSE_TIMEOUT) -> builtins.bool:
        """Stop syncing, send the queued analytics one last time and close connections.

        Never takes longer than ``timeout`` seconds, whatever the server does: requests still
        pending then are abandoned (their sockets shut down) and undelivered events dropped
        with a warning.  Returns whether everything recorded was delivered (no batch was
        dropped earlier either) and stopped in time.
        Evaluation keeps working from the last data.
        """
        if self._closed:
            return True
        deadline = time.monotonic() + max(0.0, timeout)

        def remaining() -> float:
            return max(0.0, deadline - time.monotonic())

        self._closed = True
        done = True
        if self._sync is not None:
            self._sync.stop(timeout=0)  # interrupt at once; joined below
        if self._recorder is not None:
            done = self._recorder.stop(timeout=remaining()) and done
        if self._sync is not None:
            done = self._sync.stop(timeout=remaining()) and done
        if self._cache is not None:
            done = self._cache.stop(timeout=remaining()) and done
        if self._fleet is not None:
            done = self._fleet.stop(leave=True, timeout=remaining()) and done
        self._rebuild()  # evaluation keeps working, without recording into a stopped recorder
        _live_clients.discard(self)
        return done

    async def aclose(self, timeout: float = CLOSE_TIMEOUT) -> builtins.bool:
        """``close`` for asyncio code (e.g. a FastAPI lifespan): the event loop keeps running."""
        return await asyncio.to_thread(self.close, timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        self._listeners.reinit_after_fork()
        self._state.reinit_after_fork()
        self._rebuild_lock = threading.Lock()
        if self._recorder is not None:
            _inherited_after_fork.extend(self._recorder.restart_after_fork())
        self._rebuild()
        if self._cache is not None:
            self._cache.forget_thread()
            self._cache.start()
        if self._fleet is not None:
            _inherited_after_fork.extend(self._fleet.restart_after_fork())
        if self._sync is not None:
            _inherited_after_fork.extend(self._sync.restart_after_fork())

    def _leave_fleet(self) -> None:
        """At interpreter exit: tell the fleet view this instance is gone (bounded wait)."""
        if self._fleet is not None and not self._closed:
            self._fleet.stop(leave=True)


def _is_client_side(resolved: Any) -> builtins.bool:
    return isinstance(resolved, Mapping) and resolved.get("client_side") is True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _restart_clients_in_child() -> None:
    for client in list(_live_clients):
        try:
            client._after_fork_in_child()
        except Exception:
            log.exception("flagstaff: could not restart the client after fork")


def _leave_fleet_at_exit() -> None:
    for client in list(_live_clients):
        try:
            client._leave_fleet()
        except Exception:
            log.debug("flagstaff: could not report leaving at exit", exc_info=True)


os.register_at_fork(after_in_child=_restart_clients_in_child)
atexit.register(_leave_fleet_at_exit)

