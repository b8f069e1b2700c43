"""Exposures, metric events and evaluation counts: recorder, sinks and the client's wiring."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from flagstaff.sdk import Client
from flagstaff.sdk.recorder import EventOptions, Recorder
from flagstaff.sdk.sinks import ExposureSink, HttpSink, JsonlSink, MemorySink
from tests.builders import flag, snapshot
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer

SLOW_FLUSH = EventOptions(flush_interval=60.0, counts_interval=60.0, count_drain_interval=60.0)


def _raw() -> dict[str, Any]:
    return snapshot([
        flag("exp").env("production", lambda e: e.on().fallthrough("false").experiment(status="running")),
        flag("plain").on(),
        flag("draft").env("production", lambda e: e.on().fallthrough("true").experiment()),
    ])


def _client(mode: str = "experiments", options: EventOptions = SLOW_FLUSH,
            sink: ExposureSink | None = None) -> tuple[Client, MemorySink]:
    memory = MemorySink()
    client = Client(bootstrap=_raw(), event_sink=sink or memory, exposures=mode,  # type: ignore[arg-type]
                    event_options=options)
    return client, memory


def test_by_default_only_experiment_evaluations_are_exposures_with_the_contract_fields() -> None:
    client, sink = _client()
    with client:
        for i in range(5):
            client.bool("exp", {"key": f"u{i}"})
            client.bool("plain", {"key": f"u{i}"})
            client.bool("draft", {"key": f"u{i}"})  # experiment not running: not an exposure
            client.detail("exp", {"key": f"u{i}"})  # same (user, flag, variant): deduplicated
    events = sink.events("exposures")
    assert sorted(e["user_key"] for e in events) == [f"u{i}" for i in range(5)]
    event = events[0]
    assert set(event) == {"flag_key", "variant", "user_key", "timestamp", "reason", "environment",
                          "flag_version", "in_experiment"}
    assert event["flag_key"] == "exp" and event["in_experiment"] is True
    assert event["reason"] == "SPLIT" and event["environment"] == "production"
    assert event["variant"] in ("true", "false") and event["timestamp"].endswith("Z")
    assert sink.closed


def test_mode_all_records_every_successful_evaluation_and_off_records_none() -> None:
    client, sink = _client("all")
    with client:
        client.bool("plain", {"key": "u1"})
        client.bool("exp", {"key": "u1"})
        client.bool("missing", {"key": "u1"})  # an error: nothing was exposed
        client.string("plain", {"key": "u1"})  # type mismatch: an error too
    assert sorted(e["flag_key"] for e in sink.events()) == ["exp", "plain"]
    client, sink = _client("off")
    with client:
        client.bool("exp", {"key": "u1"})
    assert sink.events() == []
    assert sink.events("evaluation-counts") == [{"flag_key": "exp", "variant": client.detail(
        "exp", {"key": "u1"}).variant, "count": 1}]


def test_bad_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="exposures must be"):
        Client(bootstrap=_raw(), event_sink=MemorySink(), exposures="some")  # type: ignore[arg-type]


def test_dedup_is_per_flush_window() -> None:
    client, sink = _client()
    with client:
        client.bool("exp", {"key": "u1"})
        client.flush()
        client.bool("exp", {"key": "u1"})
        client.bool("exp", {"key": "u1"})
    assert [e["user_key"] for e in sink.events()] == ["u1", "u1"]
    assert len([b for k, b in sink.batches if k == "exposures"]) == 2


def test_flush_at_n_events_without_waiting_for_the_interval() -> None:
    options = EventOptions(flush_interval=60.0, flush_at=10, counts_interval=60.0)
    client, sink = _client(options=options)
    with client:
        for i in range(25):
            client.bool("exp", {"key": f"user-{i}"})
        assert eventually(lambda: len(sink.events()) >= 20)
        batches = [b for k, b in sink.batches if k == "exposures"]
        assert all(len(b["events"]) >= 10 for b in batches)
    assert len(sink.events()) == 25


def test_flush_interval_sends_in_the_background() -> None:
    options = EventOptions(flush_interval=0.05, counts_interval=0.1, count_drain_interval=0.02)
    client, sink = _client(options=options)
    with client:
        client.bool("exp", {"key": "u1"})
        client.bool("plain", {"key": "u1"})
        assert eventually(lambda: len(sink.events()) == 1)
        assert eventually(lambda: len(sink.events("evaluation-counts")) == 2)


def test_a_full_queue_drops_and_counts_and_never_blocks() -> None:
    options = EventOptions(flush_interval=60.0, flush_at=10_000, max_queue=10, counts_interval=60.0)
    client, sink = _client(options=options)
    with client:
        for i in range(30):
            client.bool("exp", {"key": f"user-{i}"})
        assert client.recorder is not None and client.recorder.dropped == 20
    assert len(sink.events()) == 10


def test_evaluation_counts_are_exact_under_threads() -> None:
    options = EventOptions(flush_interval=60.0, counts_interval=60.0, count_drain_interval=0.001,
                           count_sample=10**9)  # never estimate: every item is tallied
    client, sink = _client("off", options=options)
    per_thread = 20_000

    def work() -> None:
        for _ in range(per_thread):
            client.bool("plain", {"key": "u"})

    with client:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.bool("missing")  # errors are not counted
    assert sink.events("evaluation-counts") == [
        {"flag_key": "plain", "variant": "true", "count": 4 * per_thread}]
    (_, batch), = [(k, b) for k, b in sink.batches if k == "evaluation-counts"]
    assert batch["window_start"] <= batch["window_end"]


def test_past_the_sample_limit_totals_stay_exact_and_the_split_is_estimated() -> None:
    options = EventOptions(flush_interval=60.0, counts_interval=60.0, count_drain_interval=60.0,
                           count_sample=2_000)
    client, sink = _client("off", options=options)
    with client:
        for i in range(40_000):
            client.bool("plain" if i % 4 else "exp", {"key": f"u{i % 1000}"})
        assert client.recorder is not None
        counts = client.recorder.counts()
        assert client.recorder.sampled_drains == 1
    assert abs(sum(counts.values()) - 40_000) <= len(counts)  # exact up to rounding
    assert abs(counts[("plain", "true")] - 30_000) < 1_500  # 1,500 sampled: sd ~ 390
    exp = sum(n for (key, _), n in counts.items() if key == "exp")
    assert abs(exp - 10_000) < 1_500
    assert sum(c["count"] for c in sink.events("evaluation-counts")) == sum(counts.values())


def test_track_sends_conversions_and_numbers_and_ignores_bad_values() -> None:
    client, sink = _client()
    with client:
        client.track("checkout", {"key": "u1"})
        client.track("revenue", {"targeting_key": "u2"}, 12.5)
        client.track("revenue", {"key": "u3"}, "lots")  # type: ignore[arg-type]
    events = sink.events("track")
    assert [(e["metric"], e["user_key"], e["value"]) for e in events] == [
        ("checkout", "u1", None), ("revenue", "u2", 12.5)]
    assert all(e["timestamp"].endswith("Z") for e in events)


def test_closed_client_still_evaluates_but_records_nothing() -> None:
    client, sink = _client()
    client.close()
    assert client.recorder is not None
    assert client.bool("plain", {"key": "u"}) is True
    client.bool("exp", {"key": "late"})
    client.track("checkout", {"key": "late"})
    assert client.recorder.count_buffer == [] and sink.events() == []


def test_jsonl_sink_appends_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    client, _ = _client(sink=JsonlSink(path))
    with client:
        client.bool("exp", {"key": "u1"})
        client.track("checkout", {"key": "u1"})
    client, _ = _client(sink=JsonlSink(path))
    with client:
        client.bool("exp", {"key": "u2"})
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    kinds = [(line["kind"], line.get("user_key")) for line in lines]
    assert ("exposures", "u1") in kinds and ("exposures", "u2") in kinds and ("track", "u1") in kinds
    counts = [line for line in lines if line["kind"] == "evaluation-counts"]
    assert sum(line["count"] for line in counts) == 2 and "window_start" in counts[0]


def test_a_user_sink_is_a_small_protocol_and_a_failing_one_does_not_break_anything() -> None:
    class Broken:
        def __init__(self) -> None:
            self.calls = 0

        def send(self, kind: str, batch: Any) -> None:
            self.calls += 1
            raise RuntimeError("pipeline down")

        def close(self) -> None:
            pass

    broken = Broken()
    assert isinstance(broken, ExposureSink)
    options = EventOptions(flush_interval=0.02, counts_interval=60.0)
    client, _ = _client(sink=broken, options=options)
    with client:
        client.bool("exp", {"key": "u1"})
        assert eventually(lambda: broken.calls >= 1)
        assert client.bool("plain", {"key": "u1"}) is True


def test_http_sink_retries_5xx_and_429_with_the_same_batch_id(server: FakeServer) -> None:
    server.fail_posts = [503, 429]
    sink = HttpSink(server.url, KEY, backoff_base=0.01)
    try:
        sink.send("exposures", {"batch_id": "b-1", "events": [{"flag_key": "x"}]})
    finally:
        sink.close()
    assert server.posts == [("/exposures", "b-1")] * 3
    assert [b["batch_id"] for b in server.ingested["/exposures"]] == ["b-1"]
    assert sink.sent == 1 and sink.failed == 0


def test_http_sink_gives_up_after_its_attempts_and_does_not_retry_4xx(server: FakeServer) -> None:
    server.fail_posts = [500] * 5
    sink = HttpSink(server.url, KEY, backoff_base=0.01, attempts=3)
    try:
        sink.send("track", {"batch_id": "t-1", "events": []})
        assert len(server.posts) == 3 and sink.failed == 1
        server.fail_posts = [400]
        sink.send("track", {"batch_id": "t-2", "events": []})
        assert len(server.posts) == 4 and sink.failed == 2
    finally:
        sink.close()
    assert "/track" not in server.ingested


def test_online_client_posts_exposures_counts_and_track_to_its_server(server: FakeServer) -> None:
    server.set_flag(snapshot([flag("exp").env(
        "production", lambda e: e.on().fallthrough("false").experiment(status="running"))])["flags"]["exp"])
    with Client(server.url, sdk_key=KEY, options=FAST, event_options=SLOW_FLUSH) as client:
        assert client.wait_until_ready(timeout=5)
        for i in range(3):
            client.bool("exp", {"key": f"u{i}"})
        client.track("checkout", {"key": "u1"})
    exposures = [e for b in server.ingested["/exposures"] for e in b["events"]]
    assert sorted(e["user_key"] for e in exposures) == ["u0", "u1", "u2"]
    assert server.ingested["/track"][0]["events"][0]["metric"] == "checkout"
    counts = server.ingested["/evaluation-counts"][0]["counts"]
    assert sum(c["count"] for c in counts) == 3


def test_recorder_drops_queued_data_after_fork_in_the_child() -> None:
    sink = MemorySink()
    recorder = Recorder(sink, environment=lambda: "production")
    client = Client(bootstrap=_raw())
    try:
        detail = client.detail("exp", {"key": "u"})
        recorder.expose(detail, {"key": "u"})
        recorder.count(detail)
        recorder.restart_after_fork()  # not running: nothing is started
        recorder.flush(new_window=True)
        recorder.flush_counts()
    finally:
        client.close()
    assert sink.batches == []


def test_a_forked_child_records_and_sends_its_own_exposures(server: FakeServer) -> None:
    import os

    server.set_flag(snapshot([flag("exp").env(
        "production", lambda e: e.on().fallthrough("false").experiment(status="running"))])["flags"]["exp"])
    with Client(server.url, sdk_key=KEY, options=FAST, event_options=SLOW_FLUSH) as client:
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: client.detail("exp", {"key": "x"}).in_experiment)
        client.bool("exp", {"key": "parent-user"})  # queued in the parent, sent by the parent
        pid = os.fork()
        if pid == 0:  # the child: its own event thread, without the parent's queue
            code = 1
            try:
                client.bool("exp", {"key": "child-user"})
                client.flush()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        users = [e["user_key"] for b in server.ingested.get("/exposures", []) for e in b["events"]]
        assert users == ["child-user"]
    users = [e["user_key"] for b in server.ingested["/exposures"] for e in b["events"]]
    assert sorted(users) == ["child-user", "parent-user", "x"]
