"""The Flagstaff Python SDK: local evaluation from a cache kept fresh by streaming.

```python
from flagstaff import Client
client = Client("http://127.0.0.1:8400", sdk_key="fss_...")
client.wait_until_ready(timeout=5)
client.bool("new-checkout", {"key": "user-1"}, default=False)
```

Imports only the engine, the flag-file reader and httpx: no web framework or ORM.
"""

from __future__ import annotations

from flagstaff.sdk.client import Client
from flagstaff.sdk.listeners import ClientStatus
from flagstaff.sdk.options import SyncOptions
from flagstaff.sdk.recorder import EventOptions, ExposureMode
from flagstaff.sdk.sinks import ExposureSink, HttpSink, JsonlSink, MemorySink

__all__ = [
    "Client",
    "ClientStatus",
    "EventOptions",
    "ExposureMode",
    "ExposureSink",
    "HttpSink",
    "JsonlSink",
    "MemorySink",
    "SyncOptions",
]
