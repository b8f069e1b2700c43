"""Reading the server's SSE stream and decoding its events into cache changes.

Framing follows the SSE standard (``SSEParser``: incremental line splitting on CR, LF and CRLF,
also when a CRLF is split across chunks; multi-line ``data:``; comments; ``id:`` without NUL;
``retry:``), with limits the standard does not set: a line longer than ``max_line`` characters
or an event whose data exceeds ``max_event`` raises ``StreamTooLarge`` before it is buffered
whole, so a broken or hostile server cannot make the client grow without bound; the client
then drops the connection and resynchronises. The response is decoded as ``utf-8-sig`` so that
a byte-order mark at the start of the stream, which the standard says to ignore, does not
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
from httpx_sse import ServerSentEvent

from flagstaff.numerals import ascii_int


class BadEvent(ValueError):
    """An event whose payload cannot be understood; the client resynchronises from scratch."""


class StreamTooLarge(BadEvent):
    """A line or an event over the parser's limits."""


MAX_LINE = 16 * 2**20  # a put of a large environment is one data line
MAX_EVENT = 64 * 2**20


class SSEParser:
    """Incremental SSE parser: ``feed(text)`` returns the events completed by that text."""

    def __init__(self, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT) -> None:
        self.max_line, self.max_event = max_line, max_event
        self._partial: list[str] = []
        self._partial_len = 0
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF belongs to it
        self._event = ""
        self._data: list[str] = []
        self._data_len = 0
        self._last_id = ""
        self.retry: int | None = None

    def feed(self, text: str) -> list[ServerSentEvent]:
        out: list[ServerSentEvent] = []
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = False
        start, n = 0, len(text)
        while start < n:
            cr, lf = text.find("\r", start), text.find("\n", start)
            if cr < 0 and lf < 0:
                self._add_partial(text[start:])
                break
            end = lf if cr < 0 or (0 <= lf < cr) else cr
            self._add_partial(text[start:end])
            line = "".join(self._partial)
            self._partial, self._partial_len = [], 0
            start = end + 1
            if text[end] == "\r":
                if start < n and text[start] == "\n":
                    start += 1
                elif start == n:
                    self._skip_lf = True
            event = self._line(line)
            if event is not None:
                out.append(event)
        return out

    def _add_partial(self, piece: str) -> None:
        if piece:
            self._partial_len += len(piece)
            if self._partial_len > self.max_line:
                raise StreamTooLarge(f"an SSE line is longer than {self.max_line} characters")
            self._partial.append(piece)

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_len += len(value) + 1
            if self._data_len > self.max_event:
                raise StreamTooLarge(f"an SSE event is larger than {self.max_event} characters")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:  # the standard: an id with NUL is ignored
            self._last_id = value
        elif name == "retry" and (millis := ascii_int(value, max_digits=9)) is not None:
            self.retry = millis
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._data_len, self._event = [], 0, ""
        if not data:
            return None
        return ServerSentEvent(event=event or "message", data="\n".join(data),
                               id=self._last_id, retry=self.retry)


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


def read_events(
    response: httpx.Response, *, max_line: int = MAX_LINE, max_event: int = MAX_EVENT
) -> Iterator[ServerSentEvent]:
    """Yield the events of a streaming response as they arrive."""
    response.encoding = "utf-8-sig"
    parser = SSEParser(max_line=max_line, max_event=max_event)
    for text in response.iter_text():
        yield from parser.feed(text)


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
