"""Dates (RFC 3339, nothing looser) and conditions on the evaluation time, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from flagstaff.engine import DefinitionError, Reason, compile_snapshot, validate_flag
from flagstaff.engine.instants import InstantError, parse_datetime, parse_instant
from tests.builders import cond, flag, snapshot


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class FakeClock:
    """Epoch seconds that a test sets; counts how often the engine asked."""

    def __init__(self, now: str) -> None:
        self.now = at(now)
        self.reads = 0

    def set(self, now: str) -> None:
        self.now = at(now)

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def time_flag(*conditions: dict[str, Any]) -> Any:
    return flag("f").env("production", lambda e: e.on().rule("r", *conditions, serve="true").fallthrough("false"))


def on(clock: FakeClock, *conditions: dict[str, Any]) -> bool:
    detail = compile_snapshot(snapshot([time_flag(*conditions)]), clock=clock).evaluate("f", {"key": "u"})
    assert detail.reason in (Reason.RULE_MATCH, Reason.FALLTHROUGH), detail
    return detail.reason is Reason.RULE_MATCH


def now(operator: str, *values: Any, timezone: str | None = None, negate: bool = False) -> dict[str, Any]:
    out = cond(None, operator, *values, negate=negate)
    if timezone is not None:
        out["timezone"] = timezone
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", "2024-01-01T00:00:00+00:00"),
        ("2024-01-01T10:00Z", "2024-01-01T10:00:00+00:00"),
        ("2024-01-01t10:00:00z", "2024-01-01T10:00:00+00:00"),
        ("2024-01-01 10:00:00.5+02:00", "2024-01-01T08:00:00.500000+00:00"),
        ("2024-01-01T10:00:00.123456789-07:00", "2024-01-01T17:00:00.123456+00:00"),
        ("2024-01-01T10:00:00", "2024-01-01T10:00:00+00:00"),  # no offset: UTC
        ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00+00:00"),
    ],
)
def test_rfc3339_forms(text: str, expected: str) -> None:
    assert parse_datetime(text).astimezone(UTC).isoformat() == expected


@pytest.mark.parametrize(
    "text",
    [
        "2017-12-06X00:00:00.000-07:00",  # any separator was accepted before
        "2017-12-06T00:00:00.000-0700",  # offset without a colon
        "20171206T000000Z",  # ISO-8601 basic format
        "2017-W49-3",  # ISO week date
        "2017-340",  # ordinal date
        "2017-12-06T24:00:00Z",
        "2017-12-06T23:60:00Z",
        "2023-02-29",
        "2017-12-06T10",
        "2017-12-06+02:00",  # an offset needs a time
        "\uff12\uff10\uff11\uff17-12-06",  # ASCII digits only
        "2017-12-06T10:00:00+24:00",
        " 2017-12-06",
        "2017-12-06T10:00:00.Z",
    ],
)
def test_anything_looser_is_refused(text: str) -> None:
    with pytest.raises(InstantError):
        parse_datetime(text)
    assert parse_instant(text) is None


def test_before_and_after_refuse_loose_operands_and_ignore_loose_attributes() -> None:
    definition = time_flag(cond("at", "after", "2017-12-06X00:00:00.000-07:00")).build()
    with pytest.raises(DefinitionError) as info:
        validate_flag(definition)
    assert info.value.path.endswith("conditions[0].values[0]") and "RFC 3339" in info.value.message
    snap = compile_snapshot(snapshot([time_flag(cond("at", "after", "2017-01-01T00:00:00Z"))]))
    assert snap.evaluate("f", {"key": "u", "at": "2017-12-06T00:00:00Z"}).value is True
    assert snap.evaluate("f", {"key": "u", "at": "2017-12-06X00:00:00Z"}).value is False


def test_now_before_and_after() -> None:
    clock = FakeClock("2025-06-01T12:00:00+00:00")
    assert on(clock, now("now_after", "2025-06-01T12:00:00Z"))  # inclusive: on at the instant
    assert not on(clock, now("now_before", "2025-06-01T12:00:00Z"))  # exclusive
    assert on(clock, now("now_before", "2025-06-01T12:00:01Z"))
    assert on(clock, now("now_after", "2030-01-01", "2025-01-01"))  # from the earliest
    assert on(clock, now("now_before", 1_000_000_000, "2026-01-01"))  # until the latest
    assert not on(clock, now("now_after", "2025-06-01T12:00:00Z", negate=True))


def test_window_opens_at_start_and_closes_at_end() -> None:
    window = now("now_between", "2025-03-01T09:00:00Z/2025-03-08T17:00:00Z")
    clock = FakeClock("2025-03-01T08:59:59.999999+00:00")
    snap = compile_snapshot(snapshot([time_flag(window)]), clock=clock)
    answers = []
    for moment in ("2025-03-01T08:59:59.999999+00:00", "2025-03-01T09:00:00+00:00",
                   "2025-03-08T16:59:59.999999+00:00", "2025-03-08T17:00:00+00:00"):
        clock.set(moment)
        answers.append(snap.evaluate("f", {"key": "u"}).value)
    assert answers == [False, True, True, False]


def test_several_windows_are_ored() -> None:
    windows = now("now_between", "2025-01-01T00:00:00Z/2025-01-02T00:00:00Z",
                  "2025-01-01T12:00:00Z/2025-01-03T00:00:00Z", "2025-02-01T00:00:00Z/2025-02-02T00:00:00Z")
    clock = FakeClock("2025-01-02T18:00:00+00:00")
    assert on(clock, windows)  # inside the merged first two
    clock.set("2025-01-20T00:00:00+00:00")
    assert not on(clock, windows)
    clock.set("2025-02-01T00:00:00+00:00")
    assert on(clock, windows)


def test_spring_forward_window_in_local_time() -> None:
    # Berlin, 2025-03-30: at 02:00 CET the clocks jump to 03:00 CEST.  A window 01:00-04:00
    # local is two real hours long: 00:00Z-02:00Z.
    window = now("now_between", "2025-03-30T01:00:00/2025-03-30T04:00:00", timezone="Europe/Berlin")
    clock = FakeClock("2025-03-29T23:59:59+00:00")
    assert not on(clock, window)
    clock.set("2025-03-30T00:00:00+00:00")
    assert on(clock, window)
    clock.set("2025-03-30T01:59:59+00:00")
    assert on(clock, window)
    clock.set("2025-03-30T02:00:00+00:00")  # 04:00 CEST
    assert not on(clock, window)


def test_fall_back_window_in_local_time() -> None:
    # New York, 2025-11-02: at 02:00 EDT the clocks go back to 01:00 EST.  01:30 happens twice
    # (refused), 00:30-03:00 local is 3.5 real hours: 04:30Z-08:00Z.
    window = now("now_between", "2025-11-02T00:30:00/2025-11-02T03:00:00", timezone="America/New_York")
    clock = FakeClock("2025-11-02T04:29:59+00:00")
    assert not on(clock, window)
    clock.set("2025-11-02T04:30:00+00:00")
    assert on(clock, window)
    clock.set("2025-11-02T07:59:59+00:00")
    assert on(clock, window)
    clock.set("2025-11-02T08:00:00+00:00")
    assert not on(clock, window)


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        (now("now_after", "2025-03-30T02:30:00", timezone="Europe/Berlin"), "does not exist in Europe/Berlin"),
        (now("now_between", "2025-11-02T01:30:00/2025-11-02T05:00:00", timezone="America/New_York"),
         "happens twice in America/New_York"),
        (now("now_between", "2025-01-02T00:00:00Z/2025-01-01T00:00:00Z"), "ends before it starts"),
        (now("now_between", "2025-01-01T00:00:00Z"), "start/end"),
        (now("now_between", "2025-01-01/2025-01-02/2025-01-03"), "start/end"),
        (now("now_after", "soon"), "RFC 3339"),
        (now("now_after", "2025-01-01", timezone="Mars/Olympus"), "unknown time zone"),
        (now("now_after", "2025-01-01", timezone="../../etc/passwd"), "invalid time zone"),
        ({**cond("at", "after", "2025-01-01"), "timezone": "Europe/Berlin"}, "does not apply to after"),
        ({**now("now_after", "2025-01-01"), "attribute": "at"}, "remove the attribute"),
        (now("now_before"), "at least one value"),
    ],
)
def test_invalid_time_conditions_are_refused(condition: dict[str, Any], fragment: str) -> None:
    with pytest.raises(DefinitionError) as info:
        validate_flag(time_flag(condition).build())
    assert info.value.path.startswith("environments.production.rules[0].conditions[0]")
    assert fragment in info.value.message


def test_an_offset_makes_a_dst_ambiguous_time_exact() -> None:
    condition = now("now_after", "2025-11-02T01:30:00-05:00", timezone="America/New_York")
    assert validate_flag(time_flag(condition).build())  # the second 01:30, given explicitly
    clock = FakeClock("2025-11-02T06:30:00+00:00")
    assert on(clock, condition)


def test_clock_is_read_only_by_time_conditions_and_kept_by_derived_snapshots() -> None:
    clock = FakeClock("2025-06-01T00:00:00+00:00")
    plain = flag("plain").env("production", lambda e: e.on().rule("r", cond("a", "equals", "x"), serve="true"))
    snap = compile_snapshot(snapshot([plain, time_flag(now("now_after", "2025-07-01T00:00:00Z"))]), clock=clock)
    snap.evaluate("plain", {"key": "u", "a": "x"})
    assert clock.reads == 0
    assert snap.evaluate("f", {"key": "u"}).value is False
    assert clock.reads == 1
    later = snap.with_flag(time_flag(now("now_after", "2025-05-01T00:00:00Z")).resolved())
    assert later.evaluate("f", {"key": "u"}).value is True
    assert clock.reads == 2
