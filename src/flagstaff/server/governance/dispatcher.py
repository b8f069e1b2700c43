"""The per-process webhook dispatcher: sends queued deliveries, in order per subscription.

Each round it leases subscriptions that have a due delivery (the store's claim makes the
lease exclusive across processes and replicas), then for each, concurrently with the others,
sends the oldest pending delivery, records the attempt (status code, latency, error) and goes
on with the next, until the queue is empty or an attempt fails.  A failure schedules a retry
after an exponential back-off with jitter (``retry_base`` doubling up to ``retry_max``) and
blocks the subscription until then, so later events never overtake it; a delivery still
failing ``retry_for`` after it was queued (24 h by default) is given up (``failed``) and the
queue moves on.  A 2xx answer is success; redirects are not followed (a 3xx is a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import httpx

import flagstaff
from flagstaff.server.governance import payloads, signing
from flagstaff.server.governance.egress import Blocked, EgressPolicy
from flagstaff.server.governance.scheduler import Call, utc_now

if TYPE_CHECKING:
    from flagstaff.store import Store
    from flagstaff.store.governance.deliveries import Claimed
    from flagstaff.store.governance.records import DeliveryRecord

log = logging.getLogger("flagstaff.server.webhooks")
# Deliveries sent under one lease before the subscription is released (fairness).
BATCH = 100
PRUNE_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_seconds: float = 10.0
    max_seconds: float = 3600.0
    retry_for_seconds: float = 86400.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``: exponential, with "equal jitter" (between
        half and all of the exponential value) so receivers coming back are not stampeded."""
        exponential = min(self.max_seconds, self.base_seconds * 2.0 ** max(0, attempt - 1))
        return float(exponential * rng.uniform(0.5, 1.0))


class Dispatcher:
    def __init__(
        self,
        store: Store,
        *,
        call: Call,
        egress: EgressPolicy,
        base_url: str,
        timeout_seconds: float = 10.0,
        retry: RetryPolicy | None = None,
        poll_seconds: float = 1.0,
        log_days: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._call = call
        self._egress = egress
        self._base_url = base_url
        self._timeout = timeout_seconds
        self._retry = retry or RetryPolicy()
        self._poll = poll_seconds
        self._log_days = log_days
        self._clock = clock
        self._rng = rng or random.Random()
        self.owner = "dispatcher-" + secrets.token_hex(6)
        self._wake = asyncio.Event()
        self._http: httpx.AsyncClient | None = None

    @property
    def lease(self) -> timedelta:
        # Long enough to send one delivery (renewed before each), short enough that a crashed
        # dispatcher's subscriptions are picked up soon by another.
        return timedelta(seconds=self._timeout * 2 + 5)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Loop forever (a background job of the process; cancelled at shutdown)."""
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, trust_env=False,
            headers={"User-Agent": f"Flagstaff-Webhooks/{flagstaff.__version__}"},
        ) as http:
            self._http = http
            try:
                await self._loop()
            finally:
                self._http = None
                # Hand back the leases now rather than when they expire (best effort).
                with contextlib.suppress(Exception):
                    await self._call(partial(self._store.release_webhook_leases, owner=self.owner))

    async def _loop(self) -> None:
        failures = 0
        pruned_at = 0.0
        while True:
            try:
                await self.round()
                if time.monotonic() - pruned_at > PRUNE_EVERY:
                    pruned_at = time.monotonic()
                    before = self._clock() - timedelta(days=self._log_days)
                    await self._call(partial(self._store.prune_deliveries, before=before))
            except Exception:
                failures += 1
                log.log(logging.WARNING if failures == 1 else logging.DEBUG,
                        "the webhook dispatcher failed; retrying", exc_info=True)
            else:
                failures = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()
            self._wake.clear()

    async def round(self) -> int:
        """Claim subscriptions with due deliveries and drain them; returns how many."""
        now = self._clock()
        if not await self._call(partial(self._store.webhooks_have_work, at=now)):
            return 0
        claimed = await self._call(partial(
            self._store.claim_webhooks, owner=self.owner, at=now, lease=self.lease
        ))
        await asyncio.gather(*(self._drain(c) for c in claimed))
        return len(claimed)

    async def _drain(self, sub: Claimed) -> None:
        blocked_until: datetime | None = None
        try:
            for _ in range(BATCH):
                head = await self._call(partial(self._store.delivery_head, webhook_id=sub.webhook_id))
                now = self._clock()
                if head is None:
                    break
                if head.next_attempt_at > now:
                    blocked_until = head.next_attempt_at
                    break
                renewed = await self._call(partial(
                    self._store.renew_webhook_lease, webhook_id=sub.webhook_id,
                    owner=self.owner, until=now + self.lease,
                ))
                if not renewed:
                    return  # another dispatcher holds it now; it carries on from here
                outcome = await self._attempt(sub, head)
                if outcome is not None:
                    blocked_until = outcome
                    break
        finally:
            await self._call(partial(
                self._store.release_webhook, webhook_id=sub.webhook_id, owner=self.owner,
                blocked_until=blocked_until,
            ))

    async def _attempt(self, sub: Claimed, delivery: DeliveryRecord) -> datetime | None:
        """Send once and record it; returns when to retry (None: delivered or given up)."""
        code, error, latency_ms = await self.send(sub, delivery)
        at = self._clock()
        retry_at: datetime | None = None
        if error is not None:
            delay = self._retry.delay(delivery.attempts + 1, self._rng)
            give_up = delivery.created_at + timedelta(seconds=self._retry.retry_for_seconds)
            if at + timedelta(seconds=delay) <= give_up:
                retry_at = at + timedelta(seconds=delay)
            log.log(logging.WARNING if retry_at is None else logging.INFO,
                    "webhook %s delivery %s failed (%s)%s", sub.webhook_id, delivery.id, error,
                    "; giving up" if retry_at is None else f"; retry in {delay:.1f}s")
        await self._call(partial(
            self._store.record_delivery_attempt, delivery=delivery, at=at,
            response_code=code, latency_ms=latency_ms, error=error, next_attempt_at=retry_at,
        ))
        return retry_at

    async def send(self, sub: Claimed, delivery: DeliveryRecord) -> tuple[int | None, str | None, int]:
        """POST the delivery: (status code, error or None on success, latency in ms)."""
        assert self._http is not None, "the dispatcher is not started"
        body = payloads.body(
            delivery.payload, fmt=sub.format, delivery_id=delivery.id, base_url=self._base_url
        )
        started = time.perf_counter()
        try:
            target = await self._egress.resolve(sub.url)
        except Blocked as exc:
            return None, f"blocked: {exc}", 0
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "Host": target.host_header,
            signing.EVENT: delivery.event,
            signing.DELIVERY: str(delivery.id),
            signing.TIMESTAMP: str(timestamp),
            signing.SIGNATURE: signing.signature(sub.secret, timestamp, body),
        }
        try:
            response = await self._http.post(
                target.url, content=body, headers=headers,
                extensions={"sni_hostname": target.host},
            )
        except httpx.TimeoutException:
            return None, f"timed out after {self._timeout:g}s", _ms(started)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:300], _ms(started)
        latency = _ms(started)
        if 200 <= response.status_code < 300:
            return response.status_code, None, latency
        return response.status_code, f"HTTP {response.status_code}", latency


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

