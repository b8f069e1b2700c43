"""Disk cache (no cold-start outage), bootstrap data and offline flag files."""

from __future__ import annotations

import json
from pathlib import Path

from flagstaff.sdk import Client, ClientStatus
from flagstaff.sdk.cache import read_snapshot, write_snapshot
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag, string_flag


def test_snapshot_is_cached_and_serves_a_start_while_the_server_is_down(
    server: FakeServer, tmp_path: Path, unused_port: int
) -> None:
    cache = tmp_path / "cache" / "flags.json"
    server.set_flag(string_flag("model-provider", "openai"))
    with Client(server.url, sdk_key=KEY, cache_path=cache, options=FAST) as client:
        assert client.wait_until_ready(timeout=5)
        assert eventually(lambda: cache.exists())
        server.set_flag(string_flag("model-provider", "mistral", version=2))
        assert eventually(lambda: (read_snapshot(cache) or {}).get("version") == 2)
    assert [p.name for p in cache.parent.iterdir()] == ["flags.json"]  # no temp files left

    down = f"http://127.0.0.1:{unused_port}"
    with Client(down, sdk_key=KEY, cache_path=cache, options=FAST) as cold:
        assert cold.ready and cold.status is ClientStatus.READY
        assert cold.wait_until_ready(timeout=0)
        assert cold.string("model-provider", {"key": "u"}, default="x") == "mistral"
        assert cold.bool("new-checkout", {"key": "u"}) is True
        assert cold.version == 2


def test_cached_version_resumes_the_stream_with_last_event_id(
    server: FakeServer, tmp_path: Path
) -> None:
    cache = tmp_path / "flags.json"
    server.set_flag(bool_flag("a", True))
    write_snapshot(cache, server.snapshot())
    server.set_flag(bool_flag("a", False, version=2))
    server.streams_open.clear()  # the stream answers only after the cached value was read
    with Client(server.url, sdk_key=KEY, cache_path=cache, options=FAST) as client:
        assert client.bool("a", {}, default=False) is True  # from the cache at once
        server.streams_open.set()
        assert eventually(lambda: client.bool("a", {}, default=True) is False)
    streams = [s for s in server.seen if s.path == "/stream"]
    assert streams[0].headers["Last-Event-ID"] == "1"
    assert server.count("/sdk/flags") == 0


def test_corrupt_cache_is_ignored(tmp_path: Path, unused_port: int) -> None:
    cache = tmp_path / "flags.json"
    cache.write_text("{not json")
    with Client(f"http://127.0.0.1:{unused_port}", sdk_key=KEY, cache_path=cache, options=FAST) as client:
        assert not client.ready
        assert client.bool("x", {}, default=True) is True


def test_bootstrap_snapshot_without_a_server() -> None:
    snapshot = {"environment": "production", "version": 4,
                "flags": {"a": bool_flag("a", True)}, "segments": {}}
    client = Client(bootstrap=snapshot)
    assert client.ready and client.version == 4
    assert client.bool("a", {"key": "u"}) is True
    client.close()


def test_offline_flag_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.yaml"
    path.write_text(
        """
flags:
  - key: new-checkout
    type: boolean
    environments:
      production:
        enabled: true
        targets: [{variant: "true", values: ["user-1"]}]
        fallthrough: {variant: "false"}
      staging:
        enabled: true
        fallthrough: {variant: "true"}
"""
    )
    with Client.offline(path) as client:
        assert client.bool("new-checkout", {"key": "user-1"}) is True
        assert client.bool("new-checkout", {"key": "user-2"}, default=True) is False
    staging = Client.offline(path, environment="staging")
    assert staging.bool("new-checkout", {"key": "user-2"}) is True
    json_path = tmp_path / "flags.json"
    json_path.write_text(json.dumps({"flags": [{"key": "k", "type": "string",
        "variants": {"a": "A", "b": "B"}, "off_variant": "b",
        "environments": {"production": {"enabled": True, "fallthrough": {"variant": "a"}}}}]}))
    assert Client.offline(json_path).string("k", {}, default="") == "A"
