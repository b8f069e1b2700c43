"""The relay tier: a process that serves the server's SDK-facing endpoints from memory.

``flagstaff relay --upstream URL --key fss_...`` follows its upstream (a server, or another
relay) for the environments of its keys and serves downstream SDKs, pages and relays the same
``/sdk/flags``, ``/stream``, ``/ws``, evaluation and OFREP endpoints (event streams included)
with the same keys, pages under the server's rules (``flagstaff.browser``).  It
persists what it holds so it starts and serves with the upstream down, forwards ingestion
upstream (buffering while it is away), reports to the fleet view as kind ``relay``, and never
writes flags.  Guide: docs/relay.md, "Relays".

``mirror`` (one environment's data, a realtime ChangeSource) <- ``upstream`` (HTTP to the
upstream) <- ``keys``, ``access``, ``forward``, ``datadir`` <- ``pages`` <- ``service`` (lifecycle) <- ``app`` (routes)
<- ``main`` (uvicorn).  The server never imports this package.
"""

from __future__ import annotations

from flagstaff.relay.service import Relay, RelayConfig

__all__ = ["Relay", "RelayConfig"]
