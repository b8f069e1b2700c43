"""The evaluation fast path answers exactly as the routes do: the same status, headers and body
for every request, served in front of the framework when it is clean and handed to the routes
otherwise; counted in /metrics either way.  Two apps on one database, the fast path on in one
and off in the other, get the same requests."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from flagstaff.secure_mode import secure_mode_hash
from flagstaff.server.app import FlagstaffApp, create_app
from flagstaff.server.fast_evaluation import EvaluationFastPath
from flagstaff.server.settings import Settings
from tests.builders import cond, flag
from tests.server.conftest import ADMIN_SECRET, Tokens, auth, create_token

BULK = "/ofrep/v1/evaluate/flags"
PAGE = "https://shop.example"
CONTEXT = {"targetingKey": "u1", "plan": "beta"}


class Passed:
    """Wraps what lies behind the fast path and counts the evaluation requests that reach it."""

    def __init__(self, app: FlagstaffApp) -> None:
        front = app.fast_path
        assert isinstance(front, EvaluationFastPath)
        self.inner = front.app
        self.paths: list[str] = []
        front.app = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


@pytest.fixture
def pair(database_url: str) -> Iterator[tuple[TestClient, TestClient, Passed]]:
    """(fast, routes only, what passed the fast path) on one database."""
    def settings(fast: bool) -> Settings:
        return Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        evaluation_fast_path=fast, max_body_bytes=4096)

    with TestClient(create_app(settings(True))) as fast, \
            TestClient(create_app(settings(False))) as slow:
        yield fast, slow, Passed(fast.app)  # type: ignore[arg-type]


def setup(client: TestClient, tokens: Tokens) -> None:
    flags = [
        flag("server-only").boolean().on("production"),
        flag("banner").boolean().client_side()
        .env("production", lambda e: e.on()
             .rule("beta", cond("plan", "equals", "beta"), serve="true").fallthrough("false")),
        flag("rollout").boolean().client_side()
        .env("production", lambda e: e.on().fallthrough_rollout(true=50, false=50)),
    ]
    for f in flags:
        assert client.post("/flags", json=f.build(), headers=auth(tokens.editor)).status_code == 201
    allowed = client.patch("/environments/production/client-access",
                           json={"allowed_origins": [PAGE]},
                           headers=auth(tokens.admin))
    assert allowed.status_code == 200, allowed.text


def same(fast: TestClient, slow: TestClient, path: str, **request: Any) -> Any:
    """The answer of both apps, asserted equal (the request id is fixed so it can be)."""
    headers = {"X-Request-ID": "req-1", **request.pop("headers", {})}
    a = fast.post(path, headers=headers, **request)
    b = slow.post(path, headers=headers, **request)
    assert (a.status_code, a.content) == (b.status_code, b.content), path
    assert sorted(a.headers.multi_items()) == sorted(b.headers.multi_items()), path
    return a


def tokens_of(client: TestClient) -> Tokens:
    def secret(kind: str, **fields: str) -> str:
        return str(create_token(client, kind, **fields)["secret"])

    return Tokens(
        admin=ADMIN_SECRET,
        editor=secret("management", role="editor"),
        viewer=secret("management", role="viewer"),
        sdk_server=secret("sdk-server", environment="production"),
        sdk_client=secret("sdk-client", environment="production"),
        revoked="fsm_unused",
    )


def test_clean_requests_are_answered_in_front_of_the_framework_with_the_routes_answers(
    pair: tuple[TestClient, TestClient, Passed],
) -> None:
    fast, slow, passed = pair
    tokens = tokens_of(fast)
    setup(fast, tokens)
    client, server = auth(tokens.sdk_client), auth(tokens.sdk_server)
    ofrep = {"json": {"context": CONTEXT}}
    requests: list[tuple[str, dict[str, Any]]] = [
        (BULK, {"headers": client, **ofrep}),
        (BULK, {"headers": server, **ofrep}),
        (BULK, {"headers": client | {"Origin": PAGE}, **ofrep}),
        (BULK, {"headers": client, "content": b""}),
        (f"{BULK}/banner", {"headers": client, **ofrep}),
        (f"{BULK}/banner", {"headers": server | {"Content-Type": "text/plain"}, **ofrep}),
        (f"{BULK}/rollout", {"headers": client, "json": {"context": {"plan": "beta"}}}),
        (f"{BULK}/server-only", {"headers": client, **ofrep}),  # hidden: 404 like a missing flag
        (f"{BULK}/missing", {"headers": server, **ofrep}),
        ("/evaluate", {"headers": client, "json": {"flag": "banner", "context": CONTEXT}}),
        ("/evaluate", {"headers": server, "json": {"flag": "server-only", "context": {"é": "ü"}}}),
        ("/evaluate", {"headers": auth(tokens.viewer),
                       "json": {"flag": "banner", "environment": "production", "default": 1.5}}),
        ("/evaluate/all", {"headers": client, "json": {"context": CONTEXT}}),
        ("/evaluate/all", {"headers": server, "json": {"context": CONTEXT}}),
    ]
    for path, request in requests:
        same(fast, slow, path, **request)  # the first may fill the caches
        passed.paths.clear()
        answer = same(fast, slow, path, **request)
        assert passed.paths == [], (path, request)
        assert answer.status_code in (200, 404, 400)

    tag = same(fast, slow, BULK, headers=client, **ofrep).headers["etag"]
    passed.paths.clear()
    not_modified = same(fast, slow, BULK, headers=client | {"If-None-Match": tag}, **ofrep)
    assert not_modified.status_code == 304 and passed.paths == []


def test_anything_unusual_is_left_to_the_routes(
    pair: tuple[TestClient, TestClient, Passed],
) -> None:
    fast, slow, passed = pair
    tokens = tokens_of(fast)
    setup(fast, tokens)
    client = auth(tokens.sdk_client)
    same(fast, slow, BULK, headers=client, json={})  # the key is known from now on
    ofrep = {"json": {"context": CONTEXT}}
    h = client | {"Content-Type": "application/json"}
    requests: list[tuple[str, dict[str, Any]]] = [
        (BULK, {"headers": h, "content": b'{"context": {'}),
        (f"{BULK}/banner", {"headers": h, "content": b'{"context": "u1"}'}),
        (BULK, {"headers": h, "content": b'{"context": {"targetingKey": 5}}'}),
        (BULK, {"headers": h, "content": b'{"context": {"a": "\\u0000"}}'}),
        (BULK, {"headers": h, "content": b'{"context": {"a": "' + b"x" * 5000 + b'"}}'}),
        (BULK, {"json": {"context": {}}}),
        (BULK, {"headers": auth("fsc_unknown"), **ofrep}),
        (BULK, {"headers": auth(tokens.viewer), **ofrep}),
        (BULK + "?environment=production", {"headers": auth(tokens.viewer), **ofrep}),
        (BULK, {"headers": client | {"Origin": "https://evil.example"}, **ofrep}),
        (BULK, {"headers": auth(tokens.sdk_server) | {"Origin": PAGE}, **ofrep}),
        (f"{BULK}/{'k' * 129}", {"headers": client, **ofrep}),
        ("/evaluate", {"headers": client, "json": {"context": CONTEXT}}),
        ("/evaluate", {"headers": client, "json": {"flag": "banner", "extra": 1}}),
        ("/evaluate", {"headers": client | {"Content-Type": "text/plain"},
                       "content": b'{"flag": "banner"}'}),
        ("/evaluate", {"headers": client}),
        ("/evaluate/all", {"headers": auth(tokens.viewer), "json": {"context": CONTEXT}}),
        ("/evaluate/all", {"headers": client, "json": {"environment": "staging"}}),
    ]
    for path, request in requests:
        passed.paths.clear()
        same(fast, slow, path, **request)
        assert passed.paths == [path.partition("?")[0]], (path, request)

    # A repeated header: the layers behind do not all read the same one of two.
    passed.paths.clear()
    repeated = fast.post(BULK, json={"context": CONTEXT},
                         headers=[("Authorization", f"Bearer {tokens.sdk_client}"),
                                  ("Authorization", "Bearer fsc_other")])
    assert repeated.status_code == 200 and passed.paths == [BULK]

    # Secure mode: without the hash refused by the route, with it answered in front.
    on = fast.patch("/environments/production/client-access", json={"secure_mode": True},
                    headers=auth(tokens.admin))
    assert on.status_code == 200, on.text
    secret = fast.get("/environments/production/secure-mode-secret",
                      headers=auth(tokens.admin)).json()["secret"]
    time.sleep(2.1)  # both apps' access policies reload (FLAGSTAFF_BROWSER_ACCESS_REFRESH_SECONDS)
    passed.paths.clear()
    same(fast, slow, BULK, headers=client, **ofrep)
    assert passed.paths == [BULK]
    signed = {"context": {**CONTEXT, "secureModeHash": secure_mode_hash(secret, "u1")}}
    same(fast, slow, BULK, headers=client, json=signed)
    passed.paths.clear()
    assert same(fast, slow, BULK, headers=client, json=signed).status_code == 200
    assert passed.paths == []


def test_a_revoked_key_and_a_changed_flag_are_seen_at_once(
    pair: tuple[TestClient, TestClient, Passed],
) -> None:
    fast, _, passed = pair
    tokens = tokens_of(fast)
    setup(fast, tokens)
    key = create_token(fast, "sdk-client", environment="production", name="revoked-soon")
    client = auth(key["secret"])
    body = {"context": CONTEXT}
    for _ in range(2):
        assert fast.post(f"{BULK}/banner", json=body, headers=client).json()["value"] is True
    killed = fast.post("/flags/banner/environments/production/kill", headers=auth(tokens.editor))
    assert killed.status_code == 200, killed.text
    assert fast.post(f"{BULK}/banner", json=body, headers=client).json()["value"] is False
    assert fast.delete(f"/tokens/{key['id']}", headers=auth(tokens.admin)).status_code == 200
    passed.paths.clear()
    refused = fast.post(f"{BULK}/banner", json=body, headers=client)
    assert refused.status_code == 401 and passed.paths == [f"{BULK}/banner"]


def test_answers_in_front_are_counted_and_blocked_addresses_still_get_429(
    pair: tuple[TestClient, TestClient, Passed],
) -> None:
    fast, _, passed = pair
    tokens = tokens_of(fast)
    setup(fast, tokens)
    client = auth(tokens.sdk_client)
    for _ in range(5):
        assert fast.post(BULK, json={"context": CONTEXT}, headers=client).status_code == 200
    metrics = fast.get("/metrics").text
    series = ('flagstaff_http_request_duration_seconds_count{method="POST",'
              'route="/ofrep/v1/evaluate/flags",status="200"}')
    counted = next(line for line in metrics.splitlines() if line.startswith(series))
    assert float(counted.split()[-1]) == 5.0
    for _ in range(20):
        assert fast.post(BULK, json={}, headers=auth("fsc_wrong")).status_code == 401
    passed.paths.clear()
    blocked = fast.post(BULK, json={"context": CONTEXT}, headers=client)
    assert blocked.status_code == 429 and "retry-after" in blocked.headers
    assert passed.paths == [BULK]


def test_a_body_that_never_arrives_gets_408_within_one_timeout(database_url: str) -> None:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        body_timeout_seconds=0.5)
    with TestClient(create_app(settings)) as fast:
        tokens = tokens_of(fast)
        fast.post(BULK, json={}, headers=auth(tokens.sdk_client))  # the key is known now

        async def receive() -> Message:
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        began = time.monotonic()
        sent = direct(fast, [(b"authorization", f"Bearer {tokens.sdk_client}".encode()),
                             (b"content-length", b"20")], receive)
        took = time.monotonic() - began
        assert sent[0]["status"] == 408 and took < 0.95  # one timeout, not one per reader


def direct(fast: TestClient, headers: list[tuple[bytes, bytes]], receive: Receive,
           ) -> list[Message]:
    """What the app sends for a POST to the bulk route whose body ``receive`` hands over."""
    sent: list[Message] = []
    scope = {
        "type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": BULK, "raw_path": BULK.encode(), "query_string": b"", "root_path": "",
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
        "headers": [*headers, (b"host", b"testserver")],
    }

    async def send(message: Message) -> None:
        sent.append(message)

    assert fast.portal is not None
    fast.portal.call(fast.app, scope, receive, send)
    return sent


def test_answers_in_front_with_every_origin_allowed(database_url: str) -> None:
    # With FLAGSTAFF_CORS_ORIGINS=* no origin check needs the environments' policy, which must
    # still be loaded (secure mode) for the fast path to answer.
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        cors_origins="*")
    with TestClient(create_app(settings)) as fast:
        passed = Passed(fast.app)  # type: ignore[arg-type]
        tokens = tokens_of(fast)
        setup(fast, tokens)
        headers = auth(tokens.sdk_client) | {"Origin": "https://anywhere.example"}
        for _ in range(2):
            answer = fast.post(BULK, json={"context": CONTEXT}, headers=headers)
            assert answer.status_code == 200
            assert answer.headers["access-control-allow-origin"] == "https://anywhere.example"
        passed.paths.clear()
        assert fast.post(BULK, json={"context": CONTEXT}, headers=headers).status_code == 200
        assert passed.paths == []


def test_a_body_in_pieces_is_answered_as_the_whole_body(database_url: str) -> None:
    settings = Settings(database_url=database_url, demo=False, bootstrap_token=ADMIN_SECRET,
                        max_body_bytes=4096)
    with TestClient(create_app(settings)) as fast:
        tokens = tokens_of(fast)
        key = auth(tokens.sdk_client)
        whole = fast.post(BULK, json={"context": CONTEXT}, headers=key)
        assert whole.status_code == 200
        passed = Passed(fast.app)  # type: ignore[arg-type]
        body = json.dumps({"context": CONTEXT}).encode()

        def in_pieces(pieces: list[bytes], declared: int) -> list[Message]:
            messages: list[Message] = [
                {"type": "http.request", "body": piece, "more_body": n < len(pieces) - 1}
                for n, piece in enumerate(pieces)]

            async def receive() -> Message:
                return messages.pop(0) if messages else {"type": "http.disconnect"}

            return direct(fast, [(b"authorization", key["Authorization"].encode()),
                                 (b"content-length", str(declared).encode()),
                                 (b"content-type", b"application/json")], receive)

        sent = in_pieces([body[:7], body[7:20], body[20:]], len(body))
        assert sent[0]["status"] == 200 and sent[1]["body"] == whole.content
        assert passed.paths == []  # answered in front
        # Longer than the limit only once the pieces add up: the route's 413.
        big = json.dumps({"context": {**CONTEXT, "pad": "x" * 5000}}).encode()
        sent = in_pieces([big[:3000], big[3000:]], 3000)
        assert sent[0]["status"] == 413
        assert passed.paths == [BULK]
