"""The relay's moving parts and their lifecycle: mirrors, feeds, keys, forwarding, reporting.

:class:`Relay` holds one :class:`~flagstaff.relay.mirror.EnvironmentMirror` and one
:class:`~flagstaff.realtime.ChangeFeed` per configured SDK key (one environment each).  On
:meth:`Relay.start` it loads what the data directory holds (or the exported files it was given),
so it serves at once, then follows the upstream; every change is persisted (coalesced) and
reported to the upstream's fleet view as an instance of kind ``relay``.  Nothing here writes
to the upstream but ingestion and fleet reports: a relay never changes a flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, Metric

import flagstaff
from flagstaff.fleet import Report
from flagstaff.realtime import Change, ChangeFeed, StreamMetrics, stream_settings
from flagstaff.realtime.memory import MemoryReturn
from flagstaff.relay.access import RelayAccess
from flagstaff.relay.datadir import DataDir
from flagstaff.relay.forward import Forwarder
from flagstaff.relay.keys import KeyRing, digest
from flagstaff.relay.mirror import EnvironmentMirror
from flagstaff.relay.pages import RelayPages
from flagstaff.relay.upstream import Unreachable, Upstream

log = logging.getLogger("flagstaff.relay")


@dataclass
class RelayConfig:
    """What ``flagstaff relay`` was told (docs/relay.md, "Relays")."""

    upstream: str | None
    keys: Sequence[str]
    data_dir: Path | None = None
    # Exported snapshots (``GET /sdk/flags`` bodies), in the order of ``keys``: used when the
    # data directory has nothing for that key.
    from_files: Sequence[Path] = ()
    key_ttl: float = 30.0
    report_interval: float = 60.0
    report_jitter: float = 1.0
    buffer_requests: int = 10_000
    buffer_bytes: int = 64 * 2**20
    instance: str = field(default_factory=lambda: "relay-" + secrets.token_hex(8))
    # Pages (docs/browser.md): FLAGSTAFF_CORS_ORIGINS and FLAGSTAFF_BROWSER_STREAM_TOKEN_SECONDS.
    cors_origins: Sequence[str] = ()
    stream_token_seconds: int = 3600


class Relay:
    def __init__(self, config: RelayConfig) -> None:
        if not config.keys:
            raise ValueError("a relay needs at least one server-side SDK key (--key)")
        self.config = config
        self.instance = config.instance
        self.upstream = Upstream(config.upstream) if config.upstream else None
        self.settings = stream_settings(None)
        self.metrics = StreamMetrics(CollectorRegistry())
        self.datadir = DataDir(config.data_dir) if config.data_dir else None
        self._keys = {digest(k): k for k in config.keys}
        self.mirrors: dict[str, EnvironmentMirror] = {}
        self.feeds: dict[str, ChangeFeed] = {}
        # One per process, shared by every key's feed (realtime/memory.py): a relay serves the
        # same large snapshots and events as the server.
        memory = MemoryReturn.for_this_process(on_trim=self.metrics.trimmed) \
            if self.settings.return_memory else None
        self.access = RelayAccess(upstream=self.upstream, keys=self._keys,
                                  global_origins=config.cors_origins, interval=config.key_ttl,
                                  on_changed=self._access_changed)
        self.pages = RelayPages(access=self.access, keys=list(config.keys),
                                window_seconds=config.stream_token_seconds)
        for key_digest in self._keys:
            mirror = EnvironmentMirror(key_digest=key_digest)
            mirror.on_change = self._mirror_changed
            self.mirrors[key_digest] = mirror
            self.feeds[key_digest] = ChangeFeed(
                source=mirror, settings=self.settings, metrics=self.metrics, memory=memory,
                on_changes=partial(self._changes, key_digest))
        self.keys = KeyRing(
            upstream=self.upstream, own=list(config.keys), ttl=config.key_ttl,
            own_environment=lambda d: self.mirrors[d].environment if d in self.mirrors else None,
            on_revoked=self._revoked, on_changed=self._keys_changed,
        )
        self.forwarder = Forwarder(self.upstream, max_requests=config.buffer_requests,
                                   max_bytes=config.buffer_bytes)
        self._series(self.metrics.registry)
        self._tasks: list[asyncio.Task[Any]] = []
        self._reported = asyncio.Event()

    def _series(self, registry: CollectorRegistry) -> None:
        """The relay's own series in ``/metrics``, next to the real-time ones."""
        Gauge("flagstaff_relay_upstream_reachable",
              "1 when the last request to the upstream got an answer.", registry=registry,
              ).set_function(lambda: float(bool(self.upstream and self.upstream.reachable)))
        Gauge("flagstaff_relay_ingest_pending",
              "Ingestion requests buffered for the upstream.", registry=registry,
              ).set_function(lambda: float(self.forwarder.pending))
        registry.register(_IngestCollector(self.forwarder))
        self._version = Gauge("flagstaff_relay_version",
                              "The change-event id of each environment's snapshot.",
                              ["environment"], registry=registry)

    # -- what routes ask -----------------------------------------------------------------

    def serving(self, environment: str) -> tuple[EnvironmentMirror, ChangeFeed] | None:
        """The mirror and feed of ``environment`` if this relay holds it."""
        for key_digest, mirror in self.mirrors.items():
            if mirror.environment == environment and not mirror.deleted:
                return mirror, self.feeds[key_digest]
        return None

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.mirrors.values())

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        began = time.perf_counter()
        files = list(self.config.from_files)
        for index, (key_digest, mirror) in enumerate(self.mirrors.items()):
            saved = self.datadir.read_snapshot(key_digest) if self.datadir else None
            if saved is None and index < len(files):
                saved = json.loads(Path(files[index]).read_text(encoding="utf-8"))
            if saved is not None:
                mirror.put(saved)
        loaded = [m for m in self.mirrors.values() if m.ready]
        if loaded:
            log.info("serving %d environment(s) from saved snapshots (versions %s), read in %.1f ms",
                     len(loaded), ", ".join(str(m.version) for m in loaded),
                     (time.perf_counter() - began) * 1000)
        if self.datadir is not None:
            self.keys.load(self.datadir.read_keys())
            self.access.load(self.datadir.read_access())
            self.datadir.start()
        for feed in self.feeds.values():
            await feed.start()
        self.forwarder.start()
        if self.upstream is not None:
            for key_digest, key in self._keys.items():
                self._tasks.append(asyncio.create_task(
                    self.upstream.follow(self.mirrors[key_digest], key),
                    name="flagstaff-relay-follow"))
            self._tasks.append(asyncio.create_task(self.keys.refresh_forever(),
                                                   name="flagstaff-relay-keys"))
            self._tasks.append(asyncio.create_task(self.access.refresh_forever(),
                                                   name="flagstaff-relay-access"))
            self._tasks.append(asyncio.create_task(self._report_forever(),
                                                   name="flagstaff-relay-report"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for feed in self.feeds.values():
            await feed.stop()
        await self.forwarder.stop()
        if self.datadir is not None:
            await self.datadir.stop()
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                await self._report(left=True)
            await self.upstream.close()

    # -- reactions -----------------------------------------------------------------------

    def _mirror_changed(self, mirror: EnvironmentMirror, resync: bool) -> None:
        if mirror.environment is not None:
            self._version.labels(environment=mirror.environment).set(mirror.version)
        if self.datadir is not None:
            self.datadir.mark(mirror.key_digest, mirror.copy)
        feed = self.feeds.get(mirror.key_digest)
        if mirror.rejected and feed is not None:
            feed.close_all("revoked")
        elif resync and feed is not None:
            # The upstream sent a whole new snapshot (it could not replay what the relay
            # missed): open streams may lack changes, so they reconnect and get a fresh put,
            # and pages, whose relevance tracking missed them too, are told to re-fetch.
            feed.resync(cursor=mirror.version)
            if mirror.environment is not None:
                self.pages.tracker.forget(mirror.environment)
        self._reported.set()

    async def _changes(self, key_digest: str, page: Sequence[Change]) -> None:
        """Each page of changes a feed published: the event streams of pages hear theirs."""
        await self.pages.on_changes(self.feeds[key_digest], page)

    def _access_changed(self) -> None:
        if self.datadir is not None:
            self.datadir.mark("access", self.access.dump)

    def _keys_changed(self) -> None:
        if self.datadir is not None:
            self.datadir.mark("keys", self.keys.dump)

    def _revoked(self, token_id: str) -> None:
        ended = sum(feed.revoke(token_id) for feed in self.feeds.values())
        log.info("a key was revoked upstream; ended %d open streams", ended)

    # -- the fleet view ------------------------------------------------------------------

    async def _report_forever(self) -> None:
        """Report this relay's version per environment after each change (within the
        jitter) and at least every ``report_interval``."""
        config = self.config
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.report_interval):
                    await self._reported.wait()
                await asyncio.sleep(random.uniform(0, config.report_jitter))
            self._reported.clear()
            with contextlib.suppress(Exception):
                await self._report()

    async def _report(self, *, left: bool = False) -> None:
        if self.upstream is None:
            return
        for key_digest, key in self._keys.items():
            mirror = self.mirrors[key_digest]
            report = Report(
                instance=self.instance, kind="relay", version=mirror.version or None,
                sdk=f"flagstaff-relay/{flagstaff.__version__}", host=socket.gethostname()[:255],
                pid=os.getpid(), left=left,
            )
            body = json.dumps({"reports": [report.to_dict()]}).encode()
            with contextlib.suppress(Unreachable):
                await self.upstream.send(
                    "POST", "/fleet/reports", body=body,
                    headers={"Authorization": f"Bearer {key}",
                             "Content-Type": "application/json"},
                )


class _IngestCollector:
    """``flagstaff_relay_ingest_requests_total{outcome}``, read from the forwarder's counts."""

    def __init__(self, forwarder: Forwarder) -> None:
        self._forwarder = forwarder

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "flagstaff_relay_ingest_requests",
            "Ingestion requests: forwarded (sent upstream), buffered (held while it was away), "
            "refused (503, the buffer was full), dropped (refused by the upstream once sent).",
            labels=["outcome"])
        counts = self._forwarder.counts
        for outcome in ("forwarded", "buffered", "refused", "dropped"):
            family.add_metric([outcome], getattr(counts, outcome))
        yield family
