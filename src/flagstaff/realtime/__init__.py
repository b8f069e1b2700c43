"""Real-time fan-out, shared by the server and the relay: one way, source to socket.

```
ChangeSource --> ChangeFeed --> Subscriber --> session.pump --> sse / websocket
 (source.py)     (feed.py)    (subscriber.py)  (session.py)   (transports)
```

* :class:`~flagstaff.realtime.source.ChangeSource` is where changes come from: the server's
  change log (``flagstaff.server.changesource``) or a relay's upstream stream.  This package
  never touches a database, an HTTP client or the server's authentication.
* :class:`~flagstaff.realtime.feed.ChangeFeed` reads the source in id order and offers each
  change, encoded once per environment (``events``), to every subscriber.
* :class:`~flagstaff.realtime.subscriber.Subscriber` is one connection's bounded buffer.
* ``session`` is a connection's life (initial events, then live ones, the send timeout);
  ``sse`` and ``websocket`` write it to the wire.  Polling needs no feed: it reads snapshots.

Modules import only modules to their left in that line (``events``, ``settings`` and
``metrics`` are leaves); ``tests/realtime/test_layering.py`` enforces it.  Protocol:
docs/streaming.md.
"""

from __future__ import annotations

from flagstaff.realtime.events import Change, Outgoing, parse_last_event_id, protocol_event
from flagstaff.realtime.feed import ChangeFeed
from flagstaff.realtime.metrics import StreamMetrics
from flagstaff.realtime.settings import StreamSettings, stream_settings
from flagstaff.realtime.source import ChangeSource
from flagstaff.realtime.subscriber import Subscriber

__all__ = [
    "Change",
    "ChangeFeed",
    "ChangeSource",
    "Outgoing",
    "StreamMetrics",
    "StreamSettings",
    "Subscriber",
    "parse_last_event_id",
    "protocol_event",
    "stream_settings",
]
