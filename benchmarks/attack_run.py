"""A black-box attack run against fresh server processes, as one command.

What an outside tester tries, repeatable: hostile numbers in headers and query strings before and
after authentication, hostile request bodies, batch ids reused across event kinds and
environments, WebSocket handshakes from an address over the authentication-failure limit,
``OPTIONS`` on every documented path, schemathesis over the OpenAPI document with its
response-conformance checks, and at the end a search of the server's DEBUG log for every secret
it issued and every wrong guess sent.  Each row says what was tried, how many requests, and
whether it held (the documented answer every time, never a 5xx, nothing leaked).  With
``--suites`` it also runs the fault suites that need more machinery (SIGKILL under concurrent
writes, two replicas, the SDK through outages, the authorization matrix, slow readers) through
pytest and reports their counts.

Run: ``.venv/bin/python benchmarks/attack_run.py [--fuzz-examples 5] [--suites]``; exits 1 when
anything did not hold.  docs/reliability.md lists the last run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.serverprocess import ServerProcess  # noqa: E402

# Numbers an id, a version or a timestamp must not be read from: non-ASCII digits ("²" passed
# str.isdigit() and then crashed int()), signs, exponents, overflow, padding, underscores.
HOSTILE_NUMBERS = ["\u00b2", "\u00b9", "\u2460", "\u0663", "\uff13", "\u0967\u0968", "-1", "+1", "1e3", "0x1f", "1_000", " 1",
                   "1 ", "9" * 40, "1.5", "NaN", "", "%00", "'", "1;2"]
# Query strings as a client percent-encodes them.
HOSTILE_QUERIES = ["%C2%B2", "%C2%B9", "%E2%91%A0", "%D9%A3", "%EF%BC%93", "-1", "1e3", "9" * 40,
                   "%00", "%FF", "abc", "1.5"]
FUZZ_CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
               "response_schema_conformance")
SUITES = [
    ("SIGKILL under concurrent writes, both backends", "tests/server/test_crash.py"),
    ("two replicas on one PostgreSQL", "tests/server/test_replicas.py"),
    ("authorization matrix: every route x every credential", "tests/server/test_auth_matrix.py"),
    ("slow readers and stream faults", "tests/server/test_stream_slow.py"),
    ("store and stream faults", "tests/reliability/test_faults.py"),
    ("SDK through outages and restarts", "tests/sdk/test_real_server.py"),
]


@dataclass
class Row:
    attack: str
    requests: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, what: str) -> None:
        self.requests += 1
        if not ok and len(self.failures) < 5:
            self.failures.append(what)
        elif not ok:
            self.failures.append("")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def raw_headers(secret: str, name: str, value: bytes) -> dict[bytes, bytes]:
    return {b"Authorization": f"Bearer {secret}".encode(), name.encode(): value}


def _start(tmp: Path, name: str, **env: str) -> ServerProcess:
    server = ServerProcess(f"sqlite:///{tmp / (name + '.db')}", tmp / f"{name}.log",
                           env={"FLAGSTAFF_LOG_LEVEL": "DEBUG", "FLAGSTAFF_LOG_FORMAT": "json",
                                **env})
    return server.start()


def _ws_status(port: int, headers: dict[str, str], query: str = "") -> tuple[int, dict[str, str]]:
    async def attempt() -> tuple[int, dict[str, str]]:
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws{query}", additional_headers=headers,
                               open_timeout=15):
                return 101, {}
        except InvalidStatus as refused:
            return refused.response.status_code, dict(refused.response.headers)

    return asyncio.run(attempt())


def numbers(http: httpx.Client, port: int, key: str, admin: str, guess: str) -> Row:
    row = Row("hostile numbers in Last-Event-ID, last_event_id, If-Match, since/until")
    for value in HOSTILE_NUMBERS:
        raw = value.encode("utf-8") if value.isascii() else value.encode("latin-1", "replace")
        if raw != raw.strip():
            continue  # HTTP/1.1 clients cannot send surrounding spaces in a header value
        bad = http.get("/stream", headers=raw_headers(guess, "Last-Event-ID", raw))
        row.check(bad.status_code == 401, f"bogus key + Last-Event-ID {value!r}: {bad.status_code}")
        with http.stream("GET", "/stream", headers=raw_headers(key, "Last-Event-ID", raw)) as good:
            expected = 200 if value.strip() == "" else 400  # empty: no id, a fresh stream
            row.check(good.status_code == expected, f"Last-Event-ID {value!r}: {good.status_code}")
        tag = http.patch("/flags/attack-flag", json={"description": "x"},
                         headers=raw_headers(admin, "If-Match", f'"{value}"'.encode()))
        row.check(tag.status_code == 400, f"If-Match {value!r}: {tag.status_code}")
    for query in HOSTILE_QUERIES:
        status, _ = _ws_status(port, bearer(key), f"?last_event_id={query}")
        row.check(status == 400, f"/ws last_event_id={query}: {status}")
        status, _ = _ws_status(port, bearer(guess), f"?last_event_id={query}")
        row.check(status == 401, f"bogus key /ws last_event_id={query}: {status}")
        audit = http.get(f"/audit?until={query}", headers=bearer(admin))
        row.check(audit.status_code == 400, f"/audit?until={query}: {audit.status_code}")
    return row


def _hostile_bodies() -> list[tuple[str, bytes]]:
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    bodies: list[Any] = [
        None, [], "flag", 1, {"key": None}, {"key": "a" * 10_000, "type": "boolean"},
        {"key": "nul\u0000", "type": "boolean"}, {"key": "k", "type": "boolean", "name": None},
        {"key": "k", "type": "boolean", "environments": {"production": {"rules": deep}}},
        {"key": "k", "type": "enum"}, {"key": "k", "type": "boolean", "variants": [1] * 100_001},
        {"key": "k", "type": "boolean", "tags": {"a": 1}}, {"key": "\ud800x", "type": "boolean"},
        {"key": "k", "type": "number", "default_value": 1e309},
        {"batch_id": "b", "events": [{"flag_key": "f", "timestamp": "²"}]},
    ]
    raw = [json.dumps(b).encode() for b in bodies]
    raw += [b"{", b"\xff\xfe{}", b'{"key": "k", "key": "k2", "type": "boolean"}',
            b"[" * 100_000, b'{"a": ' + b"1" * 5000 + b"}", b"NaN", b'"\\ud800"']
    return [(path, body) for path in ("/flags", "/segments", "/exposures", "/track",
                                      "/evaluation-counts", "/environments", "/tokens")
            for body in raw]


def bodies(http: httpx.Client, admin: str, key: str) -> Row:
    row = Row("hostile request bodies on every write route")
    for path, body in _hostile_bodies():
        secret = key if path in ("/exposures", "/track", "/evaluation-counts") else admin
        answer = http.post(path, content=body,
                           headers={**bearer(secret), "Content-Type": "application/json"})
        row.check(answer.status_code < 500, f"POST {path} {body[:40]!r}: {answer.status_code}")
    return row


def batches(http: httpx.Client, server_key: str, staging_key: str) -> Row:
    row = Row("one batch id across event kinds and environments")
    same = "attack-" + secrets.token_hex(6)
    event = {"flag_key": "f", "variant": "true", "user_key": "u", "reason": "FALLTHROUGH",
             "timestamp": "2026-01-01T00:00:00Z", "flag_version": 1, "in_experiment": False}
    sends = [
        ("/exposures", {"batch_id": same, "events": [event]}, server_key),
        ("/track", {"batch_id": same, "events": [{"metric": "m", "user_key": "u", "value": None,
                                                   "timestamp": "2026-01-01T00:00:00Z"}]}, server_key),
        ("/evaluation-counts", {"batch_id": same, "window_start": "2026-01-01T00:00:00Z",
                                "window_end": "2026-01-01T00:01:00Z",
                                "counts": [{"flag_key": "f", "variant": "true", "count": 1}]},
         server_key),
        ("/exposures", {"batch_id": same, "events": [event]}, staging_key),
    ]
    for path, body, key in sends:
        answer = http.post(path, json=body, headers=bearer(key))
        row.check(answer.status_code == 202 and answer.json().get("duplicate") is False,
                  f"first {path}: {answer.status_code} {answer.text[:80]}")
    for path, body, key in sends:
        answer = http.post(path, json=body, headers=bearer(key))
        row.check(answer.status_code == 202 and answer.json().get("duplicate") is True,
                  f"retry {path}: {answer.status_code} {answer.text[:80]}")
    return row


def options(http: httpx.Client) -> Row:
    row = Row("OPTIONS on every documented path names its methods")
    for template, operations in http.get("/openapi.json").json()["paths"].items():
        answer = http.options(re.sub(r"\{[^}]+\}", "x", template))
        documented = {m.upper() for m in operations if m in ("get", "post", "put", "patch", "delete")}
        allowed = set(answer.headers.get("allow", "").split(", "))
        row.check(answer.status_code == 204 and documented <= allowed,
                  f"OPTIONS {template}: {answer.status_code} {sorted(allowed)}")
    return row


def fuzz(server: ServerProcess, examples: int, seconds: int) -> Row:
    row = Row(f"schemathesis, {examples} examples/operation, conformance checks")
    command = [str(ROOT / ".venv/bin/schemathesis"), "run", f"{server.url}/openapi.json",
               "--checks", FUZZ_CHECKS, "--max-examples", str(examples), "--seed", "1",
               "--max-time", str(seconds), "-H", f"Authorization: Bearer {server.admin_token}",
               "--no-color", "--generation-database", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 120)
    found = re.findall(r"(\d+) generated", done.stdout) or re.findall(r"(\d+) test cases", done.stdout)
    row.requests = int(found[-1]) if found else 0
    if done.returncode != 0:
        tail = [line for line in done.stdout.splitlines() if line.strip()][-12:]
        row.failures.append("schemathesis failed:\n    " + "\n    ".join(tail))
    return row


def rate_limited_websocket(tmp: Path) -> Row:
    row = Row("/ws from an address over the auth-failure limit (3 here, 20 by default)")
    server = _start(tmp, "limited", FLAGSTAFF_MAX_AUTH_FAILURES="3")
    try:
        with httpx.Client(base_url=server.url, headers=bearer(server.admin_token)) as http:
            key = http.post("/tokens", json={"name": "k", "kind": "sdk-server",
                                             "environment": "production"}).json()["secret"]
        for _ in range(3):
            status, _ = _ws_status(server.port, bearer("fss_guess_" + secrets.token_hex(12)))
            row.check(status == 401, f"guess: {status}")
        status, headers = _ws_status(server.port, bearer(key))
        retry = {k.lower(): v for k, v in headers.items()}.get("retry-after", "")
        row.check(status == 429 and retry.isascii() and retry.isdigit(),
                  f"valid key while blocked: {status}, Retry-After {retry!r}")
    finally:
        server.stop()
    return row


def leaks(log: str, secrets_sent: list[str]) -> Row:
    row = Row("every secret issued and guess sent, searched in the DEBUG log")
    for secret in secrets_sent:
        row.check(secret not in log and secret[4:] not in log, f"{secret[:8]}... is in the log")
    return row


def suites() -> list[Row]:
    rows = []
    for title, path in SUITES:
        done = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "pytest", "-q", "-n", "2",
                               "-p", "no:cacheprovider", path], cwd=ROOT, capture_output=True,
                              text=True)
        counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (passed|failed|error|skipped)",
                                                          done.stdout))
        row = Row(f"{title} ({path})", requests=sum(counts.values()))
        if done.returncode != 0:
            row.failures.append(f"{counts}: " + done.stdout.strip().splitlines()[-1])
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-examples", type=int, default=5)
    parser.add_argument("--fuzz-seconds", type=int, default=300)
    parser.add_argument("--suites", action="store_true", help="also run the fault suites")
    args = parser.parse_args()
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        server = _start(tmp, "main", FLAGSTAFF_MAX_AUTH_FAILURES="1000000")
        rows: list[Row] = []
        try:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                admin = server.admin_token

                def token(kind: str, environment: str) -> str:
                    answer = http.post("/tokens", headers=bearer(admin), json={
                        "name": f"{kind}-{environment}", "kind": kind, "environment": environment})
                    return str(answer.json()["secret"])

                key, staging = token("sdk-server", "production"), token("sdk-server", "staging")
                client_key = token("sdk-client", "production")
                http.post("/flags", headers=bearer(admin),
                          json={"key": "attack-flag", "type": "boolean"})
                guess = "fss_" + secrets.token_urlsafe(32)
                steps: list[Callable[[], Row]] = [
                    lambda: numbers(http, server.port, key, admin, guess),
                    lambda: bodies(http, admin, key),
                    lambda: batches(http, key, staging),
                    lambda: options(http),
                ]
                rows += [step() for step in steps]
            rows.append(fuzz(server, args.fuzz_examples, args.fuzz_seconds))
        finally:
            server.stop()
        rows.append(leaks(server.log_path.read_text(), [admin, key, staging, client_key, guess]))
        rows.append(rate_limited_websocket(tmp))
    if args.suites:
        rows += suites()
    width = max(len(r.attack) for r in rows)
    print(f"\n{'attack':<{width}}  {'tried':>7}  held")
    for row in rows:
        print(f"{row.attack:<{width}}  {row.requests:>7}  {'yes' if not row.failures else 'NO'}")
        for failure in (f for f in row.failures if f):
            print(f"    {failure}")
    print(f"\n{time.monotonic() - started:.0f} s")
    return 0 if all(not r.failures for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
