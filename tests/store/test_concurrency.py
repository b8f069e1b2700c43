"""No lost updates and no half-written state."""

from __future__ import annotations

import threading

import pytest

from flagstaff.errors import PreconditionFailed
from flagstaff.store import Store, audit, changelog
from tests.builders import flag

THREADS = 8
ROUNDS = 4


def test_same_if_match_from_eight_threads_has_exactly_one_winner(store: Store) -> None:
    store.create_flag(definition=flag("race").boolean().build(), actor="setup")
    winners: list[str] = []
    for round_no in range(ROUNDS):
        version = store.get_flag(key="race").version
        barrier = threading.Barrier(THREADS)
        outcomes: dict[str, str] = {}

        # Names are unique per round: re-sending the current owner would be a successful no-op.
        def attempt(
            name: str,
            expected: int = version,
            gate: threading.Barrier = barrier,
            results: dict[str, str] = outcomes,
        ) -> None:
            gate.wait()
            try:
                store.patch_flag(key="race", patch={"owner": name}, actor=name, if_match=expected)
                results[name] = "won"
            except PreconditionFailed:
                results[name] = "stale"

        threads = [
            threading.Thread(target=attempt, args=(f"w{i}-r{round_no}",)) for i in range(THREADS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [name for name, result in outcomes.items() if result == "won"]
        assert len(outcomes) == THREADS and len(won) == 1, outcomes
        winners += won
        current = store.get_flag(key="race")
        assert current.version == version + 1 and current.definition["owner"] == won[0]
    updates = store.list_audit(target_key="race", action="updated").items
    assert [r.actor for r in updates] == winners
    assert [r.after["owner"] for r in updates] == winners
    assert [r.after["version"] for r in updates] == list(range(2, ROUNDS + 2))
    assert len(store.events_since(after_id=0)) == ROUNDS + 1


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("broken", ["audit", "changelog"])
def test_failure_after_the_state_write_leaves_nothing_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    store.create_flag(definition=flag("f").boolean().build(), actor="a")

    def explode(*_args: object, **_kwargs: object) -> None:
        raise Boom(broken)

    if broken == "audit":
        monkeypatch.setattr(audit, "record", explode)
    else:
        monkeypatch.setattr(changelog, "append", explode)
    with pytest.raises(Boom):
        store.patch_flag(key="f", patch={"owner": "x"}, actor="a")
    with pytest.raises(Boom):
        store.create_flag(definition=flag("g").boolean().tags("t").build(), actor="a")
    monkeypatch.undo()
    assert store.get_flag(key="f").version == 1
    assert store.get_flag(key="f").definition["owner"] == ""
    assert [f.key for f in store.list_flags().items] == ["f"]
    assert store.list_flags(tag="t").items == []
    assert len(store.list_audit().items) == 1 and store.latest_event_id() == 1
