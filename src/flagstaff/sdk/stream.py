"""Reading the server's SSE stream and decoding its events into cache changes.

Framing is done by ``httpx-sse`` (incremental line splitting on CR, LF and CRLF, multi-line
``data:``, comments, ``id:`` and ``retry:``). The response is decoded as ``utf-8-sig`` so that a
byte-order mark at the start of the stream, which the SSE standard says to ignore, does not
corrupt the first field name; httpx's incremental decoder also keeps multi-byte characters that
are split across network chunks intact.

Event types and payloads follow ``docs/streaming.md``: ``put`` carries a whole snapshot (contract
§3); ``flag_*`` and ``segment_*`` events carry only the changed object. Unknown event types are
skipped so that a newer server can add events without breaking older SDKs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent


class BadEvent(ValueError):
    """An event whose payload cannot be understood; the client resynchronises from scratch."""


@dataclass(frozen=True, slots=True)
class Change:
    """One decoded event.

    ``action`` is ``put`` (``payload`` is a snapshot), ``upsert_flag``, ``remove_flag``,
    ``upsert_segment`` or ``remove_segment`` (``payload`` is the definition or None).
    """

    action: str
    key: str | None
    payload: Mapping[str, Any] | None
    event_id: str | None


_FLAG_REMOVALS = frozenset({"flag_archived", "flag_deleted"})
_SEGMENT_REMOVALS = frozenset({"segment_deleted", "segment_archived"})


def read_events(response: httpx.Response) -> Iterator[ServerSentEvent]:
    """Yield the events of a streaming response as they arrive."""
    response.encoding = "utf-8-sig"
    for event in EventSource(response).iter_sse():
        # httpx-sse dispatches an empty event for a blank line after a comment once an id
        # has been seen (the spec says not to); every event of ours carries data.
        if event.data:
            yield event


def decode_event(event: ServerSentEvent) -> Change | None:
    """Turn one SSE event into a :class:`Change`, None for events the SDK ignores."""
    kind = event.event or "message"
    if kind not in ("put",) and not kind.startswith(("flag_", "segment_")):
        return None
    try:
        data = json.loads(event.data) if event.data else None
    except json.JSONDecodeError as exc:
        raise BadEvent(f"{kind} event {event.id!r}: data is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BadEvent(f"{kind} event {event.id!r}: data must be a JSON object")
    event_id = event.id or None
    if kind == "put":
        snapshot = data.get("snapshot", data)
        if not isinstance(snapshot, dict) or not isinstance(snapshot.get("flags"), dict):
            raise BadEvent(f"put event {event_id!r}: no snapshot with a 'flags' object")
        return Change("put", None, snapshot, event_id)
    is_flag = kind.startswith("flag_")
    body = _definition(data, "flag" if is_flag else "segment")
    key = data.get("key") or (body or {}).get("key")
    if not isinstance(key, str) or not key:
        raise BadEvent(f"{kind} event {event_id!r}: no 'key'")
    removals = _FLAG_REMOVALS if is_flag else _SEGMENT_REMOVALS
    archived = body is not None and body.get("state") == "archived"
    if kind in removals or archived or body is None:
        if kind not in removals and body is None:
            raise BadEvent(f"{kind} event {event_id!r}: no definition for {key!r}")
        return Change("remove_flag" if is_flag else "remove_segment", key, None, event_id)
    return Change("upsert_flag" if is_flag else "upsert_segment", key, body, event_id)


def _definition(data: Mapping[str, Any], field: str) -> Mapping[str, Any] | None:
    for name in (field, "definition", "data"):
        value = data.get(name)
        if isinstance(value, dict):
            return value
    return None
