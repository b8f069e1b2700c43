"""Polling for SDKs that cannot stream: ``GET /sdk/flags`` with ETag / If-None-Match."""

from __future__ import annotations

from pathlib import Path

from tests.server.test_stream_harness import Api, bearer, running_server


def test_sdk_flags_etag_is_the_event_id_and_unchanged_polls_get_304(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path) as server, Api(server) as api:
        key = api.sdk_key()
        api.create_flag("polled")
        first = api.client.get("/sdk/flags", headers=bearer(key))
        assert first.status_code == 200
        etag = first.headers["etag"]
        assert etag == f'"{first.json()["version"]}"'
        assert "polled" in first.json()["flags"]

        unchanged = api.client.get("/sdk/flags", headers={**bearer(key), "If-None-Match": etag})
        assert unchanged.status_code == 304
        assert unchanged.content == b""

        api.toggle("polled", False)
        changed = api.client.get("/sdk/flags", headers={**bearer(key), "If-None-Match": etag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != etag
        assert int(changed.headers["etag"].strip('"')) > int(etag.strip('"'))
        assert changed.json()["flags"]["polled"]["enabled"] is False
