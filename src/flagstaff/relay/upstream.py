"""The relay's side of its upstream (a server, or another relay): one HTTP client for all of it.

* :meth:`Upstream.follow` holds the upstream's ``GET /stream`` open for one environment, with
  ``Last-Event-ID`` set to the version the relay has (so a reconnect, or a start from the data
  directory, receives exactly the missed changes, or a ``put`` when the upstream cannot replay
  them), and feeds every event to the environment's mirror.  It reconnects with exponential
  backoff and full jitter, treats a stream silent for 2.5 keepalive intervals as broken, and
  stops for good on 401/403 (the relay's key was revoked).  SSE framing is the SDK's parser.
* :meth:`Upstream.live_keys` asks ``POST /relay/keys`` which SDK keys (by SHA-256 digest) are
  live.
* :meth:`Upstream.access` asks ``GET /relay/access`` for the browser access (origins, secure
  mode) of the environment of one of the relay's keys.
* :meth:`Upstream.send` forwards one ingestion request as it came.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from flagstaff.fleet import KIND_HEADER
from flagstaff.numerals import ascii_int
from flagstaff.relay.mirror import EnvironmentMirror
from flagstaff.sdk.stream import SSEParser

log = logging.getLogger("flagstaff.relay")

USER_AGENT = "flagstaff-relay"
KEEPALIVE_HEADER = "flagstaff-keepalive-seconds"
MAX_HASHES = 1000  # the upstream's limit per POST /relay/keys


class Unreachable(Exception):
    """The upstream did not answer (refused, reset, timed out) or answered 5xx."""


class Rejected(Exception):
    """The upstream refused the relay's key (401/403): retrying will not help."""


class Upstream:
    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, headers={"User-Agent": USER_AGENT},
            timeout=httpx.Timeout(10.0, connect=connect_timeout),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=20),
        )
        # Whether the last request to the upstream got an answer (for /health and logs).
        self.reachable = False

    async def close(self) -> None:
        await self._http.aclose()

    async def follow(
        self, mirror: EnvironmentMirror, key: str, *, backoff_cap: float = 10.0,
    ) -> None:
        """Follow the environment of ``key`` into ``mirror`` until cancelled or rejected."""
        failures = 0
        while True:
            try:
                await self._stream_once(mirror, key)
                failures = 0  # the stream ended cleanly (max age, shutdown): reconnect now
                delay = random.uniform(0, 0.5)
            except Rejected as exc:
                log.error("the upstream refused this relay's key for %s (%s): no longer "
                          "following or serving it", mirror.environment or "an environment", exc)
                mirror.reject()
                return
            except (httpx.HTTPError, Unreachable, ValueError) as exc:
                self.reachable = False
                failures += 1
                delay = random.uniform(0, min(backoff_cap, 0.25 * 2 ** min(failures, 10)))
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "upstream stream of %s: %s; retrying in %.2fs",
                        mirror.environment or "an environment", exc, delay)
            await asyncio.sleep(delay)

    async def _stream_once(self, mirror: EnvironmentMirror, key: str) -> None:
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream",
                   # Served first in the upstream's fan-out (realtime/sse.py, is_relay).
                   KIND_HEADER: "relay"}
        if mirror.ready:
            headers["Last-Event-ID"] = str(mirror.version)
        async with self._http.stream(
            "GET", "/stream", headers=headers, timeout=httpx.Timeout(40.0, connect=5.0),
        ) as response:
            if response.status_code in (401, 403):
                raise Rejected(f"{response.status_code} on /stream")
            if response.status_code != 200:
                raise Unreachable(f"/stream answered {response.status_code}")
            self.reachable = True
            keepalive = _seconds(response.headers.get(KEEPALIVE_HEADER))
            silence = 2.5 * keepalive if keepalive else 40.0
            parser = SSEParser()
            chunks = response.aiter_text().__aiter__()
            while True:
                try:
                    async with asyncio.timeout(silence):
                        text = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                for event in parser.feed(text):
                    self._apply(mirror, event.event, event.data, event.id)
                    if mirror.deleted:
                        return

    @staticmethod
    def _apply(mirror: EnvironmentMirror, kind: str, data: str, event_id: str) -> None:
        number = ascii_int(event_id, max_digits=19) if event_id else None
        payload = json.loads(data) if data else None
        if not isinstance(payload, dict):
            return
        if kind == "put":
            mirror.put(payload)
        elif number is not None:
            mirror.apply(number, kind, payload)

    async def live_keys(self, key: str, digests: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Which of ``digests`` belong to live SDK keys, asked with the relay's ``key``."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(digests), MAX_HASHES):
            chunk = list(digests[start:start + MAX_HASHES])
            answer = await self._relay_call("POST", "/relay/keys", key, json={"hashes": chunk})
            found.update(answer.get("keys", {}))
        return found

    async def access(self, key: str) -> dict[str, Any]:
        """The browser access of ``key``'s environment (``GET /relay/access``)."""
        return await self._relay_call("GET", "/relay/access", key)

    async def _relay_call(self, method: str, path: str, key: str, **kwargs: Any) -> dict[str, Any]:
        """One of the server's relay routes with the relay's ``key``: :class:`Rejected` when
        the key is refused, :class:`Unreachable` when the upstream is away or answers oddly."""
        try:
            response = await self._http.request(
                method, path, headers={"Authorization": f"Bearer {key}"}, **kwargs)
        except httpx.HTTPError as exc:
            self.reachable = False
            raise Unreachable(str(exc)) from exc
        if response.status_code in (401, 403):
            raise Rejected(f"{response.status_code} on {path}")
        if response.status_code != 200:
            raise Unreachable(f"{path} answered {response.status_code}")
        self.reachable = True
        answer = response.json()
        if not isinstance(answer, dict):
            raise Unreachable(f"{path} answered something else than an object")
        return answer

    async def send(
        self, method: str, path: str, *, headers: Mapping[str, str], body: bytes,
    ) -> httpx.Response:
        """One request as it came from downstream; raises :class:`Unreachable` when the
        upstream is away (no answer, or 5xx/429: worth retrying later)."""
        try:
            response = await self._http.request(method, path, headers=dict(headers), content=body)
        except httpx.HTTPError as exc:
            self.reachable = False
            raise Unreachable(str(exc)) from exc
        self.reachable = True
        if response.status_code >= 500 or response.status_code == 429:
            raise Unreachable(f"{path} answered {response.status_code}")
        return response


def _seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 < seconds < 3600 else None
