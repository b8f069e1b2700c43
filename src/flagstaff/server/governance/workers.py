"""Governed change's background work in each server process: the scheduler and the webhook
dispatcher.

``create_app`` calls :func:`install` once; it puts a :class:`Workers` holder on
``app.state.governance`` (the routes use it to wake the workers and to check webhook URLs).
The process's background jobs start in ``flagstaff.server.background.start``, which calls
:func:`spawn` next to the change-log retention job.  Every process runs its own pair, with
``--workers N`` and on every replica: the store's claims (row locks, the writer lock, leases)
keep them from doing anything twice.  ``FLAGSTAFF_BACKGROUND_WORKERS=false`` runs a process
without them (e.g. an API-only replica).
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI

from flagstaff.server.governance.dispatcher import Dispatcher, RetryPolicy
from flagstaff.server.governance.egress import EgressPolicy
from flagstaff.server.governance.scheduler import Call, Scheduler
from flagstaff.server.settings import Settings

if TYPE_CHECKING:
    from flagstaff.store import Store


class Spawner(Protocol):
    def spawn(self, job: Coroutine[Any, Any, None], *, name: str) -> None: ...


@dataclass(slots=True)
class Workers:
    """What the governance routes reach on ``app.state.governance``."""

    settings: Settings
    egress: EgressPolicy
    base_url: str
    scheduler: Scheduler | None = None
    dispatcher: Dispatcher | None = None

    def schedules_changed(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake()

    def deliveries_queued(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()


def egress_policy(settings: Settings) -> EgressPolicy:
    return EgressPolicy.parse(
        settings.webhook_allowed_hosts,
        allow_loopback=settings.webhook_allow_loopback or settings.insecure_dev,
    )


def base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return f"http://{settings.host}:{settings.port}"


def install(app: FastAPI, settings: Settings) -> None:
    app.state.governance = Workers(
        settings=settings, egress=egress_policy(settings), base_url=base_url(settings)
    )


def spawn(background: Spawner, workers: Workers, *, store: Store, call: Call) -> None:
    """Start the scheduler and the dispatcher as background jobs of this process."""
    settings = workers.settings
    if not settings.background_workers:
        return
    workers.scheduler = Scheduler(store, call=call, poll_seconds=settings.scheduler_poll_seconds)
    workers.dispatcher = Dispatcher(
        store,
        call=call,
        egress=workers.egress,
        base_url=workers.base_url,
        timeout_seconds=settings.webhook_timeout_seconds,
        retry=RetryPolicy(
            base_seconds=settings.webhook_retry_base_seconds,
            max_seconds=settings.webhook_retry_max_seconds,
            retry_for_seconds=settings.webhook_retry_for_seconds,
        ),
        poll_seconds=settings.webhook_poll_seconds,
        log_days=settings.webhook_log_days,
    )
    background.spawn(workers.scheduler.run(), name="flagstaff-scheduler")
    background.spawn(workers.dispatcher.run(), name="flagstaff-webhooks")
