"""Hot-path JSON means exactly what the standard library means: the same values read, the same
errors raised, and what it writes reads back as the value written."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flagstaff.server import wirejson

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300)
@given(JSON_VALUES)
def test_reads_what_the_standard_library_reads(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        body = text.encode()
        read = wirejson.loads(body)
        assert read == json.loads(body)
        assert json.dumps(read) == json.dumps(json.loads(body))  # int stays int, float float


@settings(max_examples=300)
@given(JSON_VALUES)
def test_writes_what_reads_back(value: Any) -> None:
    assert json.loads(wirejson.dumps(value)) == value


WITHOUT_FLOATS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300)
@given(WITHOUT_FLOATS)
def test_writes_the_compact_bytes_the_standard_library_writes(value: Any) -> None:
    # Floats aside (1e-7 may be spelt 1e-07), the very same bytes: ETags hash them.
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert wirejson.dumps(value) == expected


@pytest.mark.parametrize("body", [
    b"18446744073709551616",          # beyond 64 bits: orjson would read a float
    b'{"n": -9223372036854775809}',
    b"12345678901234567890123",
    b'"\\ud800"',                     # a lone surrogate: json reads it, orjson refuses
    b"NaN", b"1e400",                 # json's own extensions
])
def test_edges_are_the_standard_librarys(body: bytes) -> None:
    got, expected = wirejson.loads(body), json.loads(body)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("body", [b"{", b'{"a": }', b"\xff", b"[" * 100_000 + b"]" * 100_000])
def test_errors_are_the_standard_librarys(body: bytes) -> None:
    with pytest.raises(Exception) as expected:
        json.loads(body)
    with pytest.raises(expected.type):
        wirejson.loads(body)


def test_what_orjson_refuses_to_write_is_written_by_the_standard_library() -> None:
    assert wirejson.dumps({"n": 2**70}) == b'{"n":1180591620717411303424}'
    assert wirejson.dumps({1: "a"}) == b'{"1":"a"}'
    assert wirejson.dumps({"k": "é"}) == '{"k":"é"}'.encode()
