"""The evaluation routes answer from memory yet stay exact: a key revoked through this process
fails on its very next request, one revoked through another replica within the change feed's
propagation bound, and a flag changed anywhere is evaluated anew (real server processes)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.server.test_stream_harness import Api, ServerProcess, bearer, running_server

pytestmark = pytest.mark.timeout(300)
postgres_only = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
# Not a timing claim: far beyond the bound, so only a key that never stops working fails.
PATIENCE = 30.0
CONTEXT = {"context": {"targetingKey": "u1"}}
# On, it serves true to everyone; off, its off variant (false).
SERVES_TRUE = {"environments": {"production": {"enabled": True, "fallthrough": {"variant": "true"}}}}


def answers(server: ServerProcess, key: str) -> dict[str, int]:
    """The status of each evaluation route for ``key``."""
    with httpx.Client(base_url=server.url, headers=bearer(key), timeout=10) as http:
        return {
            "/evaluate": http.post("/evaluate", json={"flag": "f", **CONTEXT}).status_code,
            "/evaluate/all": http.post("/evaluate/all", json=CONTEXT).status_code,
            "ofrep single": http.post("/ofrep/v1/evaluate/flags/f", json=CONTEXT).status_code,
            "ofrep bulk": http.post("/ofrep/v1/evaluate/flags", json=CONTEXT).status_code,
        }


def created_key(api: Api) -> tuple[str, str]:
    body = {"name": "evaluator", "kind": "sdk-server", "environment": "production"}
    created = api.ok("POST", "/tokens", json=body)
    return str(created["secret"]), str(created["id"])


def value_of(server: ServerProcess, key: str) -> object:
    answer = httpx.post(f"{server.url}/ofrep/v1/evaluate/flags/f", json=CONTEXT,
                        headers=bearer(key), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def test_a_key_revoked_through_this_process_fails_on_its_next_request(
    database_url: str, tmp_path: Path
) -> None:
    # A poll far beyond the test: only this process's own write can make it exact at once.
    with running_server(database_url, tmp_path, FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS="600",
                        FLAGSTAFF_STREAM_LISTEN="false") as server, Api(server) as api:
        api.create_flag("f", **SERVES_TRUE)
        key, key_id = created_key(api)
        for _ in range(3):  # the later ones from memory
            assert set(answers(server, key).values()) == {200}
        assert value_of(server, key) is True
        api.toggle("f", False)
        assert value_of(server, key) is False
        api.ok("DELETE", f"/tokens/{key_id}")
        assert set(answers(server, key).values()) == {401}


@postgres_only
@pytest.mark.parametrize("delivery", ["notify", "poll"])
def test_a_revocation_and_a_change_on_one_replica_reach_evaluation_on_another(
    database_url: str, tmp_path: Path, delivery: str
) -> None:
    b_env = ({"FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "600"} if delivery == "notify" else
             {"FLAGSTAFF_STREAM_LISTEN": "false", "FLAGSTAFF_STREAM_POLL_INTERVAL_SECONDS": "0.5"})
    with running_server(database_url, tmp_path) as a, \
            running_server(database_url, tmp_path, **b_env) as b, Api(a) as api_a:
        api_a.create_flag("f", **SERVES_TRUE)
        key, key_id = created_key(api_a)
        for _ in range(3):
            assert set(answers(b, key).values()) == {200}
        assert value_of(b, key) is True
        api_a.toggle("f", False)
        deadline = time.monotonic() + PATIENCE
        while value_of(b, key) is not False:
            assert time.monotonic() < deadline, "replica B kept serving the old flag"
            time.sleep(0.1)
        api_a.ok("DELETE", f"/tokens/{key_id}")
        deadline = time.monotonic() + PATIENCE
        while set(answers(b, key).values()) != {401}:
            assert time.monotonic() < deadline, "replica B kept accepting the revoked key"
            time.sleep(0.1)
