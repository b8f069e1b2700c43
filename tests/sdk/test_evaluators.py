"""The client's one-frame evaluation functions agree with ``Snapshot.evaluate`` in every case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from flagstaff.engine import ErrorCode, EvaluationDetail, FlagType, Reason, compile_snapshot
from flagstaff.sdk import Client
from flagstaff.sdk.evaluators import build
from flagstaff.sdk.sinks import MemorySink
from tests.builders import cond, flag, snapshot

RAW = snapshot([
    flag("on").on(),
    flag("off"),
    flag("rules").env("production", lambda e: e.on().target("true", "vip")
                      .rule("de", cond("country", "in", "DE"), serve="true")
                      .fallthrough_rollout(true=50, false=50)),
    flag("needs-on").env("production", lambda e: e.on().prerequisite("on", "true").fallthrough("true")),
    flag("exp").env("production", lambda e: e.on().fallthrough("false").experiment(status="running")),
    flag("colour").string({"r": "red", "g": "green"}, off="r")
    .env("production", lambda e: e.on().fallthrough("g")),
    flag("limit").number({"low": 1, "high": 2.5}, off="low")
    .env("production", lambda e: e.on().fallthrough("high")),
    flag("cfg").json({"a": {"x": [1]}, "b": None}, off="b")
    .env("production", lambda e: e.on().fallthrough("a")),
])
CONTEXTS: list[Any] = [None, {}, {"key": "vip"}, {"key": "u1", "country": "DE"},
                       {"targeting_key": "u2"}, {"targetingKey": 5}, {"key": None}, {"country": ["x"]}]
def _sink() -> list[EvaluationDetail]:
    return []


TYPES = [None, FlagType.BOOLEAN, FlagType.STRING, FlagType.NUMBER, FlagType.JSON]


@pytest.mark.parametrize("key", [*RAW["flags"], "missing"])
def test_detail_and_typed_calls_match_the_engine(key: str) -> None:
    snap = compile_snapshot(RAW)
    with Client(bootstrap=RAW, event_sink=MemorySink()) as client:
        typed: dict[FlagType, Callable[..., Any]] = {FlagType.BOOLEAN: client.bool, FlagType.STRING: client.string,
                 FlagType.NUMBER: client.number, FlagType.JSON: client.json}
        for ctx in CONTEXTS:
            # No default, no expected type: the flag's value whatever its type.
            assert client.detail(key, ctx) == snap.evaluate(key, ctx or {}, None)
            for kind in TYPES:
                # Without expected_type, the default "dflt" asks for a string flag.
                want = snap.evaluate(key, ctx or {}, "dflt", expected_type=kind or FlagType.STRING)
                got = client.detail(key, ctx, "dflt", expected_type=kind)
                assert got == want, (key, ctx, kind)
                if kind is not None:
                    assert typed[kind](key, ctx, "dflt") == want.value


def test_an_exception_in_a_flag_function_goes_through_the_engine_error_path() -> None:
    snap = compile_snapshot(RAW)

    def explode(ctx: Any, depth: int, table: Any) -> Any:
        raise RuntimeError("boom")

    snap._table["rules"] = (FlagType.BOOLEAN, explode)  # a bug inside a compiled flag
    count: list[Any] = []
    evaluators = build(snap, stale=False, count=count.append, expose=None, expose_all=False)
    detail = evaluators.detail("rules", {"key": "u"}, False)
    assert detail.value is False and detail.error_code is ErrorCode.GENERAL
    assert "boom" in (detail.error_message or "")
    assert evaluators.bool("rules", {"key": "u"}, True) is True
    assert len(count) == 2


def test_stale_detail_keeps_value_and_errors_but_reports_stale() -> None:
    snap = compile_snapshot(RAW)
    evaluators = build(snap, stale=True, count=_sink().append, expose=None, expose_all=False)
    detail = evaluators.detail("on", {})
    assert (detail.value, detail.variant, detail.reason) == (True, "true", Reason.STALE)
    assert evaluators.detail("missing").reason is Reason.ERROR
    assert evaluators.bool("on", {}) is True


def test_client_functions_follow_snapshot_and_stale_changes() -> None:
    from flagstaff.sdk.stream import Change

    with Client(bootstrap=RAW) as client:
        before = client.bool
        assert client.bool("on") is True
        resolved = snapshot([flag("on")])["flags"]["on"]
        client._state.apply(Change("upsert_flag", "on", resolved, "99"))
        assert client.bool is not before and client.bool("on") is False
        client._state.stale = True
        assert client.detail("off").reason is Reason.STALE
        client._state.stale = False
        assert client.detail("off").reason is Reason.DISABLED


def test_detail_checks_the_flag_type_against_the_default_like_the_typed_calls() -> None:
    snap = compile_snapshot(RAW)
    evaluators = build(snap, stale=False, count=lambda d: None, expose=None, expose_all=False)
    for default in ("d", 3, 2.5, {}, []):
        typed = evaluators.detail("on", {"key": "u"}, default)  # "on" is a boolean flag
        assert (typed.value, typed.error_code) == (default, ErrorCode.TYPE_MISMATCH), default
    assert evaluators.detail("on", {"key": "u"}, False).error_code is None
    assert evaluators.detail("on", {"key": "u"}).error_code is None  # None: no type asked for
    explicit = evaluators.detail("on", {"key": "u"}, None, expected_type=FlagType.STRING)
    assert explicit.error_code is ErrorCode.TYPE_MISMATCH
