"""Order of precedence, reasons, error codes, prerequisites and segments."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from flagstaff.engine import (
    DefinitionError,
    ErrorCode,
    EvaluationDetail,
    FlagType,
    Reason,
    compile_snapshot,
)
from tests.builders import cond, flag, segment, segment_match, snapshot

CTX = {"key": "user-123", "country": "DE", "plan": "pro", "email": "a@acme.com",
       "version": "2.3.1", "age": 37}


def full_flag(enabled: bool = True) -> Any:
    return flag("f").string({"off": "OFF", "target": "T", "rule": "R", "fall": "F"}, off="off").env(
        "production",
        lambda e: (e.on() if enabled else e.off())
        .prerequisite("gate", "true")
        .target("target", "user-123")
        .rule("by-country", cond("country", "equals", "DE"), serve="rule")
        .fallthrough("fall"),
    )


def gate(on: bool = True, serve: str = "true") -> Any:
    return flag("gate").env("production", lambda e: (e.on() if on else e.off()).fallthrough(serve))


def test_order_of_precedence() -> None:
    snap = compile_snapshot(snapshot([full_flag(), gate()]))
    d = snap.evaluate("f", CTX, "dflt")
    assert (d.value, d.variant, d.reason) == ("T", "target", Reason.TARGET_MATCH)
    d = snap.evaluate("f", {**CTX, "key": "other"}, "dflt")
    assert (d.value, d.reason, d.rule_id, d.rule_index) == ("R", Reason.RULE_MATCH, "by-country", 0)
    d = snap.evaluate("f", {**CTX, "key": "other", "country": "FR"}, "dflt")
    assert (d.value, d.reason) == ("F", Reason.FALLTHROUGH)
    assert d.flag_key == "f" and d.version == 1 and d.error_code is None

    failed = compile_snapshot(snapshot([full_flag(), gate(serve="false")])).evaluate("f", CTX, "dflt")
    assert (failed.value, failed.variant, failed.reason, failed.prerequisite_key) == (
        "OFF", "off", Reason.PREREQUISITE_FAILED, "gate")

    disabled = compile_snapshot(snapshot([full_flag(enabled=False), gate()])).evaluate("f", CTX, "x")
    assert (disabled.value, disabled.reason) == ("OFF", Reason.DISABLED)

    no_fallthrough = flag("n").env("production", lambda e: e.on())
    d = compile_snapshot(snapshot([no_fallthrough])).evaluate("n", CTX, True)
    assert (d.value, d.variant, d.reason) == (False, "false", Reason.DEFAULT)


def test_missing_environment_is_disabled() -> None:
    f = flag("f").env("staging", lambda e: e.on().fallthrough("true"))
    d = compile_snapshot(snapshot([f])).evaluate("f", CTX, None)
    assert (d.value, d.reason) == (False, Reason.DISABLED)


def test_split_reason_and_rule_rollout() -> None:
    f = flag("f").env("production", lambda e: e.on()
                      .rule("half", cond("plan", "equals", "pro"), serve={"rollout": {
                          "variations": [{"variant": "true", "weight": 100},
                                         {"variant": "false", "weight": 0}]}})
                      .fallthrough_rollout(true=0, false=100))
    snap = compile_snapshot(snapshot([f]))
    d = snap.evaluate("f", CTX)
    assert (d.value, d.reason, d.rule_id) == (True, Reason.RULE_MATCH, "half")
    d = snap.evaluate("f", {**CTX, "plan": "free"})
    assert (d.value, d.reason) == (False, Reason.SPLIT)


def test_errors_return_callers_default() -> None:
    bad = flag("bad").build()
    bad["environments"] = {"production": {"enabled": True, "fallthrough": {"variant": "nope"}}}
    snap = compile_snapshot({"environment": "production", "version": 7, "flags": {
        "good": flag("good").on().resolved(),
        "bad": {**flag("bad").on().resolved(), "fallthrough": {"variant": "nope"}},
        "old": {**flag("old").on().resolved(), "state": "archived"},
    }})
    assert snap.version == 7 and snap.environment == "production"
    d = snap.evaluate("missing", CTX, "dflt")
    assert (d.value, d.reason, d.error_code) == ("dflt", Reason.ERROR, ErrorCode.FLAG_NOT_FOUND)
    d = snap.evaluate("old", CTX, "dflt")
    assert d.error_code is ErrorCode.FLAG_NOT_FOUND
    d = snap.evaluate("bad", CTX, "dflt")
    assert (d.value, d.error_code) == ("dflt", ErrorCode.PARSE_ERROR)
    assert d.error_message is not None and "fallthrough.variant" in d.error_message
    d = snap.evaluate("good", CTX, "dflt", expected_type=FlagType.STRING)
    assert (d.value, d.error_code) == ("dflt", ErrorCode.TYPE_MISMATCH)
    assert snap.evaluate("good", CTX, False, expected_type=FlagType.BOOLEAN).value is True
    assert snap.flag_keys() == ["bad", "good"]
    everything = snap.evaluate_all(CTX)
    assert everything["good"].value is True and everything["bad"].error_code is ErrorCode.PARSE_ERROR


def test_general_error_never_raises() -> None:
    snap = compile_snapshot(snapshot([full_flag(), gate()]))
    d = snap.evaluate("f", None, "dflt")  # type: ignore[arg-type]
    assert (d.value, d.reason, d.error_code) == ("dflt", Reason.ERROR, ErrorCode.GENERAL)


def test_malformed_snapshot_envelope() -> None:
    for bad, path in [([], ""), ({"flags": []}, "flags"), ({"version": "1"}, "version"),
                      ({"segments": {"s": 1}, "environment": ""}, "environment")]:
        with pytest.raises(DefinitionError) as info:
            compile_snapshot(bad)  # type: ignore[arg-type]
        assert info.value.path == path


def test_prerequisites() -> None:
    off_gate = compile_snapshot(snapshot([full_flag(), gate(on=False)]))
    assert off_gate.evaluate("f", CTX).prerequisite_key == "gate"
    # An off prerequisite fails even when its off variant is the required one.
    f = flag("f").env("production", lambda e: e.on().prerequisite("gate", "false").fallthrough("true"))
    assert compile_snapshot(snapshot([f, gate(on=False)])).evaluate("f", CTX).reason is \
        Reason.PREREQUISITE_FAILED
    assert compile_snapshot(snapshot([f, gate(serve="false")])).evaluate("f", CTX).value is True
    missing = compile_snapshot(snapshot([f]))
    assert missing.evaluate("f", CTX).reason is Reason.PREREQUISITE_FAILED
    # Chains evaluate transitively.
    a = flag("a").env("production", lambda e: e.on().prerequisite("b", "true").fallthrough("true"))
    b = flag("b").env("production", lambda e: e.on().prerequisite("c", "true").fallthrough("true"))
    c = flag("c").env("production", lambda e: e.on().rule("r", cond("plan", "equals", "pro"),
                                                            serve="true").fallthrough("false"))
    snap = compile_snapshot(snapshot([a, b, c]))
    assert snap.evaluate("a", CTX).value is True
    d = snap.evaluate("a", {**CTX, "plan": "free"})
    assert (d.reason, d.prerequisite_key) == (Reason.PREREQUISITE_FAILED, "b")


def test_prerequisite_cycle_in_corrupted_snapshot_is_bounded() -> None:
    a = flag("a").env("production", lambda e: e.on().prerequisite("b", "true").fallthrough("true"))
    b = flag("b").env("production", lambda e: e.on().prerequisite("a", "true").fallthrough("true"))
    snap = compile_snapshot(snapshot([a, b]))
    d = snap.evaluate("a", CTX, "dflt")
    assert (d.value, d.error_code) == ("dflt", ErrorCode.GENERAL)
    assert d.error_message is not None and "too deep" in d.error_message


def test_segments() -> None:
    beta = (segment("beta").include("user-123", "both").exclude("banned", "both")
            .rule(cond("email", "ends_with", "@acme.com"), cond("plan", "equals", "pro")))
    staff = segment("staff").rule(segment_match("beta"), cond("age", "gte", 18))
    f = flag("f").env("production", lambda e: e.on()
                      .rule("seg", segment_match("staff", "nonexistent"), serve="true")
                      .fallthrough("false"))
    snap = compile_snapshot(snapshot([f], [beta, staff]))
    assert snap.evaluate("f", CTX).reason is Reason.RULE_MATCH  # included
    assert snap.evaluate("f", {"key": "x", "age": 40, "email": "b@acme.com", "plan": "pro"}).value
    assert not snap.evaluate("f", {"key": "x", "age": 40, "email": "b@acme.com", "plan": "free"}).value
    assert not snap.evaluate("f", {"key": "user-123", "age": 10}).value  # nested rule needs age
    assert not snap.evaluate("f", {"key": "banned", "age": 40, "email": "b@acme.com",
                                   "plan": "pro"}).value  # excluded beats rules
    assert not snap.evaluate("f", {"key": "both", "age": 40}).value  # excluded beats included
    negated = flag("g").env("production", lambda e: e.on()
                            .rule("not-beta", segment_match("beta", negate=True), serve="true")
                            .fallthrough("false"))
    snap2 = compile_snapshot(snapshot([negated], [beta]))
    assert snap2.evaluate("g", {"key": "nobody"}).value is True
    assert snap2.evaluate("g", CTX).value is False


def test_segment_cycle_in_corrupted_snapshot_is_parse_error() -> None:
    s1 = segment("s1").rule(segment_match("s2"))
    s2 = segment("s2").rule(segment_match("s1"))
    f = flag("f").env("production", lambda e: e.on().rule("r", segment_match("s1"), serve="true"))
    d = compile_snapshot(snapshot([f, flag("plain").on()], [s1, s2])).evaluate("f", CTX, "dflt")
    assert (d.value, d.error_code) == ("dflt", ErrorCode.PARSE_ERROR)
    assert "cycle" in (d.error_message or "")


def test_details_are_immutable_and_precomputed() -> None:
    snap = compile_snapshot(snapshot([flag("w1").on()]))
    first, second = snap.evaluate("w1", CTX), snap.evaluate("w1", {"key": "other"})
    assert first is second
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.value = False  # type: ignore[misc]
    assert not hasattr(first, "__dict__")


def test_openfeature_mapping() -> None:
    assert Reason.TARGET_MATCH.openfeature == "TARGETING_MATCH"
    assert Reason.RULE_MATCH.openfeature == "TARGETING_MATCH"
    assert Reason.SPLIT.openfeature == "SPLIT"
    assert Reason.DISABLED.openfeature == "DISABLED"
    assert Reason.FALLTHROUGH.openfeature == "DEFAULT"
    assert Reason.ERROR.openfeature == "ERROR"
    # Providers parse reasons into OpenFeature's enum: a failed prerequisite serves the off
    # variant, so it is DISABLED (prerequisite_key keeps the cause).
    assert Reason.PREREQUISITE_FAILED.openfeature == "DISABLED"
    assert Reason.STALE.openfeature == "STALE"
    from openfeature.exception import ErrorCode as OFErrorCode
    from openfeature.flag_evaluation import Reason as OFReason

    assert {r.openfeature for r in Reason} <= {r.value for r in OFReason}
    assert {c.openfeature for c in ErrorCode} <= {c.value for c in OFErrorCode}
    assert {c.openfeature for c in ErrorCode} == {
        "FLAG_NOT_FOUND", "TYPE_MISMATCH", "PARSE_ERROR", "GENERAL", "PROVIDER_NOT_READY",
        "TARGETING_KEY_MISSING"}
    assert FlagType.JSON.openfeature == "OBJECT" and FlagType.NUMBER.openfeature == "FLOAT"
    assert isinstance(EvaluationDetail(1, "a", Reason.SPLIT), EvaluationDetail)
