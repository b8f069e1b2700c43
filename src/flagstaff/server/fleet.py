"""The fleet view on the server: hear reports, store them in batches, answer "who has it".

Reports reach a process three ways, all ending in :meth:`FleetCollector.heard`: the body of
``POST /fleet/reports`` (an SDK's report after it applied a change, its heartbeat, a relay's
batch for the SDKs behind it), and the ``Flagstaff-Instance``/``Flagstaff-Version`` headers on
``GET /sdk/flags`` polls and ingestion posts (:func:`note_report_headers`).  Hearing costs a dict
store: each process coalesces what it heard (the last report of an instance wins) and writes it
to the database in one transaction every ``fleet_flush_interval_seconds``, so every replica
reads the same view and the database sees at most one write per replica per interval however
many instances report (docs/relay.md, "The fleet view").  The buffer is bounded
(``fleet_max_pending`` instances); beyond it reports are dropped and counted.

:class:`FleetView` reads the view (one grouped query) for ``GET /fleet``, ``/metrics`` and the
console.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from flagstaff.fleet import Convergence, Report, VersionCount, converge, report_from_headers
from flagstaff.server.auth import AnyPrincipal, Principal
from flagstaff.store.fleet import Heard

if TYPE_CHECKING:
    from flagstaff.server.settings import Settings
    from flagstaff.store import Store

log = logging.getLogger("flagstaff.server.fleet")

KINDS = ("sdk", "relay")


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(value: int | None) -> str | None:
    if value is None:
        return None
    moment = datetime.fromtimestamp(value / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FleetSettings:
    stale_after_seconds: float = 300.0
    forget_after_seconds: float = 3600.0
    flush_interval_seconds: float = 1.0
    max_pending: int = 100_000

    @classmethod
    def of(cls, settings: Settings | None) -> FleetSettings:
        defaults = cls()
        return cls(**{
            name: getattr(settings, f"fleet_{name}", getattr(defaults, name))
            for name in ("stale_after_seconds", "forget_after_seconds",
                         "flush_interval_seconds", "max_pending")
        })


class FleetCollector:
    """Coalesces what this process hears and writes it to the store in batches."""

    def __init__(self, store: Store, settings: FleetSettings) -> None:
        self._store = store
        self.settings = settings
        self._pending: dict[tuple[str, str], Heard] = {}
        self._lock = threading.Lock()
        # Held for a whole flush, so a flush returns only once everything heard before it
        # began is stored, even when another flush was writing at the time.
        self._flushing = threading.Lock()
        self.heard_total = 0
        self.dropped_total = 0
        self.flush_failures = 0
        self._task: asyncio.Task[None] | None = None

    def heard(self, principal: Principal, reports: Iterable[Report]) -> int:
        """Queue reports sent with ``principal``'s key; returns how many were kept."""
        environment = principal.environment
        if environment is None:
            return 0
        at = now_ms()
        kept = 0
        with self._lock:
            pending = self._pending
            for report in reports:
                key = (principal.token_id, report.instance)
                if key not in pending and len(pending) >= self.settings.max_pending:
                    self.dropped_total += 1
                    continue
                pending[key] = Heard(principal.token_id, environment, report, at)
                kept += 1
            self.heard_total += kept
        return kept

    def flush(self) -> int:
        """Write what is pending (blocking; a worker thread calls it).  On a failure the
        batch is put back, under what arrived meanwhile, and retried next time."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
            if not batch:
                return 0
            try:
                self._store.record_fleet_reports(heard=list(batch.values()))
            except Exception:
                self.flush_failures += 1
                with self._lock:
                    for key, item in batch.items():
                        if len(self._pending) >= self.settings.max_pending:
                            self.dropped_total += 1
                        else:
                            self._pending.setdefault(key, item)
                raise
            return len(batch)

    async def run(self) -> None:
        settings = self.settings
        loop = asyncio.get_running_loop()
        next_forget = 0.0
        failures = 0
        while True:
            await asyncio.sleep(settings.flush_interval_seconds)
            try:
                await loop.run_in_executor(None, self.flush)
                if loop.time() >= next_forget:
                    cutoff = now_ms() - int(settings.forget_after_seconds * 1000)
                    await loop.run_in_executor(
                        None, partial(self._store.forget_fleet, heard_before_ms=cutoff)
                    )
                    next_forget = loop.time() + 60.0
            except Exception:
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "storing fleet reports failed; retrying", exc_info=True)
            else:
                failures = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="flagstaff-fleet")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # a last try; the database may be gone
            await asyncio.get_running_loop().run_in_executor(None, self.flush)


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """The view at one moment: the latest SDK-visible change and the version histogram."""

    latest: int
    rows: list[VersionCount]
    at_ms: int

    def environments(self) -> list[str]:
        return sorted({row.environment for row in self.rows})

    def convergence(
        self, *, kind: str, target: int | None = None, environments: Iterable[str] | None = None
    ) -> Convergence:
        wanted = None if environments is None else set(environments)
        rows = [r for r in self.rows
                if r.kind == kind and (wanted is None or r.environment in wanted)]
        return converge(rows, target=self.latest if target is None else target)


class FleetView:
    """Reads the stored view; a short cache keeps a busy console or scrape from repeating the
    same grouped query."""

    CACHE_SECONDS = 0.5

    def __init__(self, store: Store, settings: FleetSettings) -> None:
        self._store = store
        self.settings = settings
        self._cached: tuple[float, str | None, FleetSnapshot] | None = None

    def cutoffs(self) -> tuple[int, int]:
        """(heard since: older is forgotten, stale before: older is stale), in epoch ms."""
        now = now_ms()
        return (now - int(self.settings.forget_after_seconds * 1000),
                now - int(self.settings.stale_after_seconds * 1000))

    def snapshot(self, environment: str | None = None) -> FleetSnapshot:
        cached = self._cached
        clock = time.monotonic()
        if cached is not None and cached[1] == environment and clock - cached[0] < self.CACHE_SECONDS:
            return cached[2]
        heard_since, stale_before = self.cutoffs()
        latest, rows = self._store.fleet_histogram(
            heard_since_ms=heard_since, stale_before_ms=stale_before, environment=environment
        )
        snap = FleetSnapshot(latest=latest, rows=rows, at_ms=now_ms())
        self._cached = (clock, environment, snap)
        return snap

    def summary(self, *, environment: str | None = None, target: int | None = None) -> dict[str, Any]:
        """``GET /fleet``: per environment, SDKs and relays against change ``target``."""
        snap = self.snapshot(environment)
        goal = snap.latest if target is None else target
        envs = [environment] if environment is not None else snap.environments()
        return {
            "version": goal,
            "latest_version": snap.latest,
            "stale_after_seconds": self.settings.stale_after_seconds,
            "generated_at": iso_ms(snap.at_ms),
            "environments": [self._environment(snap, env, goal) for env in envs],
        }

    def _environment(self, snap: FleetSnapshot, environment: str, target: int) -> dict[str, Any]:
        out: dict[str, Any] = {"environment": environment}
        for kind, name in (("sdk", "sdks"), ("relay", "relays")):
            summary = snap.convergence(kind=kind, target=target, environments=[environment])
            data = summary.to_dict()
            data["last_heard_at"] = iso_ms(data.pop("last_heard_ms"))
            data["oldest_heard_at"] = iso_ms(data.pop("oldest_heard_ms"))
            out[name] = data
        versions: dict[int | None, dict[str, int]] = {}
        for row in snap.rows:
            if row.environment == environment:
                entry = versions.setdefault(row.version, {"sdks": 0, "relays": 0, "stale": 0})
                entry["sdks" if row.kind == "sdk" else "relays"] += row.instances
                entry["stale"] += row.stale
        out["versions"] = [
            {"version": version, **counts}
            for version, counts in sorted(versions.items(), key=lambda kv: -1 if kv[0] is None else kv[0], reverse=True)
        ]
        return out


class FleetMetrics(Collector):
    """Fleet gauges read from the store at scrape time (the same on every replica: aggregate
    them with ``max``, not ``sum``), and this process's report counters."""

    def __init__(self, view: FleetView, collector: FleetCollector) -> None:
        self._view = view
        self._collector = collector

    def collect(self) -> Iterator[Any]:
        heard = CounterMetricFamily("flagstaff_fleet_reports", "Fleet reports this process heard.")
        heard.add_metric([], self._collector.heard_total)
        dropped = CounterMetricFamily(
            "flagstaff_fleet_reports_dropped",
            "Fleet reports this process dropped (its buffer was full).",
        )
        dropped.add_metric([], self._collector.dropped_total)
        yield heard
        yield dropped
        try:
            snap = self._view.snapshot()
        except Exception:  # the database is down: the gauges are absent, not wrong
            log.debug("fleet metrics unavailable", exc_info=True)
            return
        latest = GaugeMetricFamily("flagstaff_fleet_latest_version",
                                   "The latest change SDKs must apply (event id).")
        latest.add_metric([], snap.latest)
        yield latest
        instances = GaugeMetricFamily(
            "flagstaff_fleet_instances", "SDK instances and relays known to the fleet view.",
            labels=["environment", "kind", "status"],
        )
        oldest = GaugeMetricFamily(
            "flagstaff_fleet_oldest_version", "The oldest version an instance still serves.",
            labels=["environment", "kind"],
        )
        for env in snap.environments():
            for kind in KINDS:
                summary = snap.convergence(kind=kind, environments=[env])
                if not summary.instances:
                    continue
                instances.add_metric([env, kind, "current"], summary.have)
                instances.add_metric([env, kind, "behind"], summary.missing)
                instances.add_metric([env, kind, "stale"], summary.stale)
                if summary.oldest_version is not None:
                    oldest.add_metric([env, kind], summary.oldest_version)
        yield instances
        yield oldest


def note_report_headers(request: Request, principal: AnyPrincipal) -> None:
    """A dependency: the report an SDK piggy-backed on this request's headers, if any."""
    fleet: Fleet | None = getattr(request.app.state, "fleet", None)
    if fleet is None or principal.is_management:
        return
    report = report_from_headers(request.headers)
    if report is not None:
        fleet.collector.heard(principal, [report])


ReportHeaders = Annotated[None, Depends(note_report_headers)]


@dataclass(slots=True)
class Fleet:
    collector: FleetCollector
    view: FleetView


def install(app: FastAPI, registry: CollectorRegistry | None) -> None:
    """Add the fleet routes and metrics; run the collector in the app's lifespan."""
    from flagstaff.server.routes import fleet as routes

    app.include_router(routes.router)
    settings = FleetSettings.of(getattr(app.state, "settings", None))
    app.router.lifespan_context = _wrap_lifespan(app.router.lifespan_context, settings, registry)


def _wrap_lifespan(
    inner: Callable[[Any], AbstractAsyncContextManager[Any]],
    settings: FleetSettings,
    registry: CollectorRegistry | None,
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with inner(app) as state:
            store = app.state.store
            fleet = Fleet(FleetCollector(store, settings), FleetView(store, settings))
            app.state.fleet = fleet
            metrics = FleetMetrics(fleet.view, fleet.collector)
            if registry is not None:
                registry.register(metrics)
            await fleet.collector.start()
            try:
                yield state
            finally:
                await fleet.collector.stop()
                if registry is not None:
                    registry.unregister(metrics)

    return lifespan
