"""The SSE reader against raw bytes split at every position."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from flagstaff.sdk.stream import BadEvent, decode_event, read_events


class _Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def _events(chunks: list[bytes]) -> list[tuple[str, str, str]]:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Chunks(chunks)
    )
    return [(e.event, e.id, e.data) for e in read_events(response)]


BODY = (
    "\ufeff: hello\r\n"
    "retry: 1000\r\n"
    "id: 1\r\nevent: put\r\ndata: {\"flags\": {},\r\ndata:  \"version\": 1}\r\n\r\n"
    "id: 2\revent: flag_updated\rdata: {\"key\": \"caf\u00e9\"}\r\r"
    "id: 3\nevent: flag_archived\ndata:{\"key\": \"b\"}\n\n"
    ": keepalive\n\n"
    "id: 4\nevent: flag_updated\ndata: {\"key\": \"partial\"}\n"
).encode()

EXPECTED = [
    ("put", "1", '{"flags": {},\n "version": 1}'),
    ("flag_updated", "2", '{"key": "caf\u00e9"}'),
    ("flag_archived", "3", '{"key": "b"}'),
]


def test_whole_body_parses_bom_crlf_cr_lf_multiline_and_drops_unterminated_event() -> None:
    assert _events([BODY]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(BODY)))
def test_any_split_point_gives_the_same_events(cut: int) -> None:
    assert _events([BODY[:cut], BODY[cut:]]) == EXPECTED


def test_byte_by_byte() -> None:
    assert _events([BODY[i : i + 1] for i in range(len(BODY))]) == EXPECTED


def _sse(event: str, data: object, id: str = "5") -> object:
    from httpx_sse import ServerSentEvent

    return ServerSentEvent(event=event, data=json.dumps(data), id=id)


def test_decode_flag_segment_and_put_events() -> None:
    flag = {"key": "a", "state": "active"}
    change = decode_event(_sse("flag_updated", {"key": "a", "flag": flag}))  # type: ignore[arg-type]
    assert change is not None and (change.action, change.key, change.payload, change.event_id) == (
        "upsert_flag", "a", flag, "5")
    archived = decode_event(_sse("flag_updated", {"key": "a", "flag": {"state": "archived"}}))  # type: ignore[arg-type]
    assert archived is not None and archived.action == "remove_flag"
    gone = decode_event(_sse("flag_archived", {"key": "a"}))  # type: ignore[arg-type]
    assert gone is not None and (gone.action, gone.key) == ("remove_flag", "a")
    seg = decode_event(_sse("segment_deleted", {"key": "s"}))  # type: ignore[arg-type]
    assert seg is not None and (seg.action, seg.key) == ("remove_segment", "s")
    put = decode_event(_sse("put", {"environment": "p", "version": 5, "flags": {}, "segments": {}}))  # type: ignore[arg-type]
    assert put is not None and put.action == "put" and put.payload is not None
    assert decode_event(_sse("environment_created", {"key": "x"})) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "data"),
    [("put", {"nope": 1}), ("flag_updated", {"flag": {}}), ("flag_updated", {"key": "a"}),
     ("flag_updated", [1])],
)
def test_malformed_events_are_refused(event: str, data: object) -> None:
    with pytest.raises(BadEvent):
        decode_event(_sse(event, data))  # type: ignore[arg-type]


def test_non_json_data_is_refused() -> None:
    from httpx_sse import ServerSentEvent

    with pytest.raises(BadEvent, match="not JSON"):
        decode_event(ServerSentEvent(event="flag_updated", data="{oops", id="1"))
