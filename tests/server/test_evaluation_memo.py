"""An evaluation answer put together from remembered encodings is the answer built afresh,
byte for byte (ETag included), for every context, flag shape and audience."""

from __future__ import annotations

from typing import Any

from flagstaff.browser.visibility import ClientView
from flagstaff.engine import compile_snapshot
from flagstaff.server import answer_memo, evaluation
from flagstaff.server.answer_memo import AnswerMemo
from tests.builders import cond, flag, snapshot

STREAMS = [{"type": "sse", "endpoint": {"requestUri": "/ofrep/v1/stream?token=t"},
            "inactivityDelaySec": 120}]


def _snapshot() -> Any:
    return compile_snapshot(snapshot([
        flag("split").boolean().client_side().env(
            "production", lambda e: e.on().target("true", "vip")
            .rule("nl", cond("country", "in", "NL"), serve="false")
            .fallthrough_rollout(true=30, false=70)),
        flag("gated").string({"a": "A", "b": "B"}).client_side().env(
            "production", lambda e: e.on().prerequisite("split", "true").fallthrough("b")),
        flag("off").boolean().client_side().env("production", lambda e: e.off()),
        flag("server-only").boolean().env("production", lambda e: e.on().fallthrough("true")),
    ]))


def test_bulk_and_single_answers_with_the_memo_are_the_answers_without_it() -> None:
    snap, view, memo = _snapshot(), ClientView(), AnswerMemo()
    contexts: list[dict[str, Any]] = [{"targetingKey": f"user-{n}", "country": c}
                                      for n in range(2_000) for c in ("NL", "DE")]
    contexts += [{"targetingKey": "vip"}, {"country": "DE"}, {}]  # no key: TARGETING_KEY_MISSING
    for context in contexts:
        for client in (True, False):
            for streams in (STREAMS, None):
                fresh = evaluation.ofrep_bulk(snap, view, context, client=client,
                                              event_streams=streams, installation="i")
                remembered = evaluation.ofrep_bulk(snap, view, context, client=client,
                                                   event_streams=streams, installation="i",
                                                   memo=memo)
                assert remembered == fresh
            for key in ("split", "gated", "off", "server-only", "missing"):
                assert evaluation.ofrep_single(snap, key, context, client=client, memo=memo) \
                    == evaluation.ofrep_single(snap, key, context, client=client)
    # Only shared outcomes are kept (errors are built per call): a handful per flag, and per
    # audience and event streams a handful of combinations of them.
    assert 0 < len(memo.items) <= 40
    assert 0 < len(memo.bodies) <= 40


def test_a_full_memo_starts_over_and_answers_the_same(monkeypatch: Any) -> None:
    monkeypatch.setattr(answer_memo, "MAX_BODIES", 2)
    monkeypatch.setattr(answer_memo, "MAX_ITEMS", 3)
    snap, view, memo = _snapshot(), ClientView(), AnswerMemo()
    for n in range(200):
        context = {"targetingKey": f"user-{n}", "country": "NL" if n % 3 else "DE"}
        for streams in (STREAMS, None):
            assert evaluation.ofrep_bulk(snap, view, context, client=True, event_streams=streams,
                                         installation="i", memo=memo) \
                == evaluation.ofrep_bulk(snap, view, context, client=True,
                                         event_streams=streams, installation="i")
            assert len(memo.bodies) <= 2 and len(memo.items) <= 3


def test_a_remembered_body_keeps_what_it_was_made_of() -> None:
    # Its slot names objects by id; holding them, it can never be taken for other objects'.
    snap, view, memo = _snapshot(), ClientView(), AnswerMemo()
    streams = [dict(STREAMS[0])]
    evaluation.ofrep_bulk(snap, view, {"targetingKey": "vip"}, client=True,
                          event_streams=streams, installation="i", memo=memo)
    [(slot, (objects, _raw, _tag))] = memo.bodies.items()
    assert objects[0] is streams
    assert slot[2:] == tuple(id(o) for o in objects)


def test_the_tag_is_the_installations_hash_of_the_body() -> None:
    import hashlib

    snap = _snapshot()
    raw, tag = evaluation.ofrep_bulk(snap, ClientView(), {"targetingKey": "u"}, client=True,
                                     event_streams=None, installation="install-1")
    expected = hashlib.blake2b(b"install-1" + raw, digest_size=16).hexdigest()
    assert tag == f'"{expected}"'
    _, other = evaluation.ofrep_bulk(snap, ClientView(), {"targetingKey": "u"}, client=True,
                                     event_streams=None, installation="install-2")
    assert other != tag
