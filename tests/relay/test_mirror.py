"""The relay's copy of an environment: upstream events in, the same protocol events out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flagstaff.engine import resolve_flag
from flagstaff.realtime.events import protocol_event
from flagstaff.relay.mirror import EnvironmentMirror, as_definition

ENV = "production"


def flag(key: str, *, enabled: bool = True, experiment: bool = False) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "key": key, "type": "boolean", "version": 3, "client_side": True,
        "environments": {ENV: {"enabled": enabled, "targets": [{"variant": "true", "values": ["u1"]}],
                               "fallthrough": {"variant": "false"}}},
    }
    if experiment:
        definition["environments"][ENV]["experiment"] = {"id": "exp-1"}
    return resolve_flag(definition, ENV)


def snapshot(version: int, **flags: dict[str, Any]) -> dict[str, Any]:
    return {"environment": ENV, "version": version, "flags": dict(flags), "segments": {}}


@pytest.mark.parametrize("experiment", [False, True])
def test_a_resolved_flag_resolves_back_to_itself(experiment: bool) -> None:
    resolved = flag("a", experiment=experiment)
    assert resolve_flag(as_definition(resolved, ENV), ENV) == resolved


def test_events_change_the_snapshot_and_are_re_encoded_as_the_upstream_sent_them() -> None:
    mirror = EnvironmentMirror(key_digest="d" * 64)
    mirror.put(snapshot(10, a=flag("a")))
    killed = flag("a", enabled=False)
    assert mirror.apply(12, "flag_updated", {"key": "a", "flag": killed})
    assert mirror.version == 12 and mirror.raw()["flags"]["a"] == killed  # type: ignore[index]
    compiled = mirror.compiled()
    assert compiled is not None and compiled.evaluate("a", {"key": "u1"}).value is False

    change = asyncio.run(mirror.events_since(after_id=10, limit=10))[0]
    out = protocol_event(change, ENV)
    assert out is not None and out.event == "flag_updated" and out.id == 12
    assert out.data == '{"key":"a","flag":' + _compact(killed) + "}"

    assert mirror.apply(13, "flag_archived", {"key": "a"})
    assert "a" not in mirror.raw()["flags"]  # type: ignore[index]
    assert mirror.apply(14, "segment_updated", {"key": "s", "segment": {"key": "s", "rules": []}})
    assert mirror.apply(15, "segment_deleted", {"key": "s"})
    assert mirror.raw()["segments"] == {}  # type: ignore[index]
    # A repeat (a reconnect's overlap) changes nothing; an unknown event is not applied.
    assert mirror.apply(12, "flag_updated", {"key": "a", "flag": killed})
    assert "a" not in mirror.raw()["flags"]  # type: ignore[index]
    assert not mirror.apply(16, "something_new", {"key": "x"})
    assert mirror.version == 15


def test_the_retained_log_answers_what_a_reconnecting_client_missed() -> None:
    mirror = EnvironmentMirror(key_digest="d" * 64, retain=3)
    mirror.put(snapshot(10, a=flag("a")))

    async def since(after: int) -> list[int]:
        return [c.id for c in await mirror.events_since(after_id=after, limit=100)]

    assert asyncio.run(mirror.oldest_event_id()) == 11  # everything after the snapshot is kept
    for n in (11, 13, 14, 17):
        mirror.apply(n, "flag_updated", {"key": "a", "flag": flag("a", enabled=n % 2 == 0)})
    assert asyncio.run(since(13)) == [14, 17]
    # Only three are kept: the oldest retained id moved past 11, so a client after 10 needs a put.
    assert asyncio.run(mirror.oldest_event_id()) == 12
    assert asyncio.run(since(17)) == []


def test_a_replacing_put_asks_for_a_resync_and_clears_the_log() -> None:
    seen: list[bool] = []
    mirror = EnvironmentMirror(key_digest="d" * 64)
    mirror.on_change = lambda _m, resync: seen.append(resync)
    mirror.put(snapshot(10, a=flag("a")))
    mirror.apply(11, "flag_updated", {"key": "a", "flag": flag("a", enabled=False)})
    mirror.put(snapshot(20, b=flag("b")))
    assert seen == [False, False, True]
    assert asyncio.run(mirror.events_since(after_id=0, limit=10)) == []
    assert mirror.version == 20 and list(mirror.raw()["flags"]) == ["b"]  # type: ignore[index]


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
