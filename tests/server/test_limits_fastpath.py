"""The fast structural check of request bodies agrees with the full, path-naming walk."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstaff.server.limits import (
    RequestLimits,
    _first_violation,
    _too_small_to_break_limits,
    _within_limits,
)

SMALL = RequestLimits(
    max_json_depth=4, max_string_length=8, max_list_items=5, max_object_keys=5,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=7)
    | st.dictionaries(st.text(max_size=10), children, max_size=7),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fast_check_passes_exactly_the_bodies_the_full_walk_passes(value: Any) -> None:
    assert _within_limits(value, SMALL) is (_first_violation(value, SMALL) is None)


def test_scalar_and_nul_bodies() -> None:
    assert _within_limits(5, SMALL) and _within_limits(None, SMALL)
    assert not _within_limits("a\x00b", SMALL)
    assert not _within_limits({"k\x00": 1}, SMALL)
    assert not _within_limits([[[[["deep"]]]]], SMALL)


ROOMY = RequestLimits(
    max_json_depth=4, max_string_length=60, max_list_items=60, max_object_keys=60,
)


@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans())
def test_a_body_passed_on_its_bytes_alone_passes_the_walk(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    if _too_small_to_break_limits(body, ROOMY):
        assert _within_limits(value, ROOMY)


def test_bodies_that_could_break_a_limit_are_walked() -> None:
    assert _too_small_to_break_limits(b'{"context": {"targetingKey": "u1"}}', ROOMY)
    assert not _too_small_to_break_limits(b'[[[[["deep"]]]]]', ROOMY)
    assert not _too_small_to_break_limits(b'{"a": "\\u0000"}', ROOMY)
    assert not _too_small_to_break_limits('{"a": 1}'.encode("utf-16"), ROOMY)
    assert not _too_small_to_break_limits(b'"' + b"x" * 60 + b'"', ROOMY)
