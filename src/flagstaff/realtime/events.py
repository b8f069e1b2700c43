"""The protocol's events: what a stored change becomes on the wire, encoded once.

A :class:`Change` is one committed change as any source delivers it (the server's change log,
or a relay's upstream stream); :func:`protocol_event` turns it into the :class:`Outgoing` event a
client of one environment receives, with its SSE frame and WebSocket message built from one
JSON encoding shared by every connection.  Protocol: docs/streaming.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sse_starlette import ServerSentEvent

from flagstaff.engine import resolve_flag
from flagstaff.errors import Invalid
from flagstaff.numerals import ascii_int


class Change(Protocol):
    """One committed change (``flagstaff.store.records.ChangeEvent`` has this shape).

    ``data`` is the object after the change (None on delete); ``kind`` is ``flag``,
    ``segment`` or ``environment``.
    """

    @property
    def id(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def type(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def data(self) -> Any: ...


def dumps(value: Any) -> str:
    """Compact JSON, as every event's ``data`` is encoded."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One protocol event, encoded once for every connection that receives it.

    ``data`` is the JSON payload, ``sse`` the complete SSE frame; ``final`` closes the
    connection after sending.
    """

    id: int
    event: str
    data: str
    sse: bytes
    final: bool = False
    # The WebSocket message, built on first use and then shared like the SSE frame.
    _ws: list[str] = field(default_factory=list, compare=False, repr=False)

    @classmethod
    def of(cls, event_id: int, event: str, data: str, *, final: bool = False) -> Outgoing:
        frame = ServerSentEvent(data, event=event, id=str(event_id), sep="\n").encode()
        return cls(event_id, event, data, frame, final)

    def ws_message(self) -> str:
        """The WebSocket text message ``{"id": ..., "event": ..., "data": {...}}``."""
        if not self._ws:
            self._ws.append(f'{{"id":{self.id},"event":{dumps(self.event)},"data":{self.data}}}')
        return self._ws[0]


def protocol_event(event: Change, environment: str) -> Outgoing | None:
    """The event a client of ``environment`` receives for a stored change (None: nothing).

    Flags are resolved for the environment, so a client only ever sees its own environment's
    configuration.  Unknown types are skipped so older servers tolerate newer writers.
    """
    data = event.data
    if event.kind == "flag":
        if event.type == "flag_archived" or data is None or data.get("state") == "archived":
            return Outgoing.of(event.id, "flag_archived", dumps({"key": event.key}))
        resolved = resolve_flag(data, environment)
        return Outgoing.of(event.id, "flag_updated", dumps({"key": event.key, "flag": resolved}))
    if event.kind == "segment":
        if event.type == "segment_deleted" or data is None:
            return Outgoing.of(event.id, "segment_deleted", dumps({"key": event.key}))
        return Outgoing.of(event.id, "segment_updated", dumps({"key": event.key, "segment": data}))
    deleted_here = event.type == "environment_deleted" and event.key == environment
    if event.kind == "environment" and deleted_here:
        return Outgoing.of(
                event.id, "environment_deleted", dumps({"key": event.key}), final=True
            )
    return None


# A key's revocation travels through the change log like any change (kind ``token``, key = the
# key's id), so every replica's feed learns of it in order and within the same bound.
CREDENTIAL_KIND = "token"


def revoked_credential(event: Change) -> str | None:
    """The id of the key ``event`` revokes, or None (not a revocation)."""
    return event.key if event.kind == CREDENTIAL_KIND else None


def parse_last_event_id(value: str | None, *, field: str) -> int | None:
    """The client's last event id; absent or empty means none, anything else must be an id."""
    if value is None or value.strip() == "":
        return None
    number = ascii_int(value.strip(), max_digits=19)
    if number is None:
        raise Invalid(f"{field} must be a change-event id (a non-negative integer in ASCII digits)",
                      details={"field": field})
    return number
