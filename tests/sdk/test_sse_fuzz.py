"""Malformed and adversarial SSE input: the reader never crashes, memory stays
bounded, and nothing that reaches the cache can corrupt it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstaff.engine.errors import DefinitionError
from flagstaff.sdk import Client
from flagstaff.sdk.state import FlagState
from flagstaff.sdk.stream import BadEvent, SSEParser, StreamTooLarge, decode_event
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Field values: anything but line breaks (which end a line in every SSE framing).
text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
events = st.lists(
    st.tuples(st.sampled_from(["put", "flag_updated", "x"]), st.lists(text, min_size=1, max_size=3),
              st.text("0123456789", min_size=1, max_size=5)),
    max_size=6,
)


def _chunks(data: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _feed(parser: SSEParser, chunks: list[str]) -> list[tuple[str, str, str]]:
    return [(e.event, e.data, e.id) for chunk in chunks for e in parser.feed(chunk)]


@FUZZ
@given(events, st.sampled_from(["\n", "\r", "\r\n"]), st.booleans(),
       st.lists(st.integers(min_value=0), max_size=12))
def test_well_formed_streams_parse_the_same_with_any_line_ending_and_any_chunking(
    evs: list[tuple[str, list[str], str]], eol: str, comments: bool, cuts: list[int],
) -> None:
    body = ""
    for kind, lines, event_id in evs:
        if comments:
            body += ": keepalive" + eol
        body += f"id: {event_id}{eol}event: {kind}{eol}"
        body += "".join(f"data: {line}{eol}" for line in lines) + eol
    expected = [(k, "\n".join(lines), i) for k, lines, i in evs]
    assert _feed(SSEParser(), _chunks(body, cuts)) == expected


@FUZZ
@given(st.lists(st.text(max_size=200), max_size=20), st.integers(min_value=1, max_value=64))
def test_arbitrary_text_never_raises_anything_but_too_large_and_stays_bounded(
    chunks: list[str], limit: int
) -> None:
    parser = SSEParser(max_line=limit, max_event=4 * limit)
    try:
        for chunk in chunks:
            for event in parser.feed(chunk):
                assert len(event.data) <= 4 * limit
                assert "\0" not in event.id
            assert parser._partial_len <= limit  # never buffers past the line limit
    except StreamTooLarge:
        pass


def test_oversized_line_and_oversized_event_are_refused_before_being_buffered() -> None:
    parser = SSEParser(max_line=100, max_event=250)
    with pytest.raises(StreamTooLarge, match="line"):
        for _ in range(10):
            parser.feed("data: " + "x" * 20)  # one line arriving in small pieces
    parser = SSEParser(max_line=100, max_event=250)
    with pytest.raises(StreamTooLarge, match="event"):
        parser.feed("data: " + "y" * 90 + "\n" * 1 + ("data: " + "y" * 90 + "\n") * 3)


def test_nul_in_id_is_ignored_bom_and_split_crlf() -> None:
    parser = SSEParser()
    chunks = ["id: 7\r", "\nevent: put\r\ndata: {}\r\n\r", "\n", "id: 8\0x\ndata: 2\n\n"]
    assert _feed(parser, chunks) == [("put", "{}", "7"), ("message", "2", "7")]
    assert parser.retry is None
    assert _feed(SSEParser(), ["retry: 12\nretry: x\n"]) == []


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)


@FUZZ
@given(st.lists(st.tuples(
    st.sampled_from(["put", "flag_updated", "flag_archived", "segment_updated", "segment_deleted",
                     "other"]),
    st.one_of(json_values, st.fixed_dictionaries({"key": st.sampled_from(["x", "y", "keep"]),
                                                  "flag": json_values})),
    st.integers(min_value=-5, max_value=50),
), max_size=8))
def test_garbage_events_never_corrupt_the_cache(evs: list[tuple[str, Any, int]]) -> None:
    from httpx_sse import ServerSentEvent

    state = FlagState("production")
    state.replace({"environment": "production", "version": 1,
                   "flags": {"keep": bool_flag("keep", True)}, "segments": {}})
    for kind, data, event_id in evs:
        before = (state.snapshot, state.version, state.raw())
        try:
            change = decode_event(ServerSentEvent(event=kind, data=json.dumps(data), id=str(event_id)))
            if change is not None:
                state.apply(change)
        except (BadEvent, DefinitionError):
            # Refused: the cache is exactly as it was (the client then resynchronises).
            assert (state.snapshot, state.version, state.raw()) == before
        snap = state.snapshot
        assert snap is not None
        # Whatever was applied, the compiled snapshot agrees with the raw cache it came from.
        for key, raw in state.raw()["flags"].items():
            detail = snap.evaluate(key, {"key": "u"})
            assert detail.flag_key == key
            if raw.get("key") == key and raw.get("state") != "archived":
                assert detail.error_code is None or detail.error_code.value == "PARSE_ERROR"


def test_an_oversized_line_from_the_server_drops_the_connection_and_the_client_resyncs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = dataclasses.replace(FAST, max_line=1000, max_event=4000)
    with FakeServer([bool_flag("new-checkout", True)]) as server:
        server.raw_stream_prefix = b": " + b"z" * 5000 + b"\n"
        with Client(server.url, sdk_key=KEY, options=options) as client:
            assert client.wait_until_ready(timeout=5)  # from the first GET /sdk/flags
            sync = client._sync
            assert sync is not None
            assert eventually(lambda: caplog.text.count("longer than 1000 characters") >= 2)
            assert client.bool("new-checkout", {}, default=False) is True  # cache intact
            server.raw_stream_prefix = b""
            server.set_flag(bool_flag("new-checkout", False, version=2))
            assert eventually(lambda: client.bool("new-checkout", {}, default=True) is False)
