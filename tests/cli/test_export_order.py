"""``flagstaff export`` keeps git diffs quiet, through real server processes.

Two servers hold the same flags but created their environments (and the flags, and each
flag's environments) in different orders: their exports must be byte-identical, with the
environments in pipeline order.  After one flag changes, a diff of two exports must touch
that flag's lines and nothing else.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Result
from tests.serverprocess import ServerProcess, server_process

pytestmark = pytest.mark.slow

EXTRA = ("canary", "qa")
PIPELINE = ["development", "staging", "production", "canary", "qa"]


def _env(enabled: bool, variant: str) -> dict[str, Any]:
    return {"enabled": enabled, "fallthrough": {"variant": variant}}


# Each flag's environments, the same content on both servers.
FLAGS: dict[str, dict[str, dict[str, Any]]] = {
    "checkout-v2": {"production": _env(False, "false"), "staging": _env(True, "true"),
                    "qa": _env(True, "true"), "development": _env(True, "true"),
                    "canary": _env(True, "false")},
    "dark-mode": {"canary": _env(False, "false"), "development": _env(True, "true"),
                  "production": _env(True, "false"), "qa": _env(False, "false"),
                  "staging": _env(True, "true")},
    "search-ranking": {"qa": _env(True, "true"), "production": _env(True, "true"),
                       "canary": _env(True, "true"), "staging": _env(False, "false"),
                       "development": _env(True, "false")},
}


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with (
        server_process(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "a.log",
                       FLAGSTAFF_LOG_LEVEL="WARNING") as a,
        server_process(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "b.log",
                       FLAGSTAFF_LOG_LEVEL="WARNING") as b,
    ):
        yield a, b


def _admin(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin_token}"}, timeout=60
    )


def _populate(server: ServerProcess, *, recreate: str, extra: list[str], flags: list[str],
              reverse_envs: bool) -> list[str]:
    """Create the same content in a given order; returns the server's own environment order."""
    with _admin(server) as admin:
        # Re-creating a built-in environment makes it the newest one on this server.
        assert admin.delete(f"/environments/{recreate}").status_code == 204
        for key in [*extra, recreate]:
            assert admin.post("/environments", json={"key": key}).status_code == 201, key
        for key in flags:
            envs = list(FLAGS[key].items())
            if reverse_envs:
                envs.reverse()
            created = admin.post("/flags", json={
                "key": key, "type": "boolean", "environments": dict(envs)})
            assert created.status_code == 201, created.text
        return [e["key"] for e in admin.get("/environments").json()["items"]]


def _export(cli: Callable[..., Result], server: ServerProcess, out: Path) -> str:
    result = cli("--url", server.url, "--token", server.admin_token, "export", "--out", str(out))
    assert result.code == 0, result.err
    return out.read_text(encoding="utf-8")


def _flag_span(lines: list[str], key: str) -> range:
    """The lines of flag ``key``'s entry in an exported file (from its ``- key:`` line up to the
    next flag's)."""
    starts = [i for i, line in enumerate(lines) if line.startswith("- key: ")]
    start = lines.index(f"- key: {key}")
    later = [i for i in starts if i > start]
    return range(start, later[0] if later else len(lines))


def test_exports_are_byte_identical_whatever_the_creation_order(
    two_servers: tuple[ServerProcess, ServerProcess], cli: Callable[..., Result], tmp_path: Path
) -> None:
    a, b = two_servers
    order_a = _populate(a, recreate="staging", extra=list(EXTRA), flags=sorted(FLAGS),
                        reverse_envs=False)
    order_b = _populate(b, recreate="development", extra=list(reversed(EXTRA)),
                        flags=sorted(FLAGS, reverse=True), reverse_envs=True)
    # The servers really list their environments differently (creation order) ...
    assert order_a != order_b and sorted(order_a) == sorted(order_b) == sorted(PIPELINE)

    text_a = _export(cli, a, tmp_path / "a.yaml")
    text_b = _export(cli, b, tmp_path / "b.yaml")
    # ... yet the files are the same bytes, and every environment list is in pipeline order.
    assert text_a == text_b
    lines = text_a.splitlines()
    top = lines.index("environments:")
    assert lines[top + 1: top + 1 + len(PIPELINE)] == [f"- {e}" for e in PIPELINE]
    for key in FLAGS:
        span = [lines[i] for i in _flag_span(lines, key)]
        per_flag = [ln.strip().rstrip(":") for ln in span if ln.startswith("    ")
                    and not ln.startswith("     ") and ln.strip().rstrip(":") in PIPELINE]
        assert per_flag == PIPELINE, (key, per_flag)
    # The same server exported again is the same file too.
    assert _export(cli, a, tmp_path / "a-again.yaml") == text_a


def test_a_change_in_one_flag_changes_only_its_lines(
    two_servers: tuple[ServerProcess, ServerProcess], cli: Callable[..., Result], tmp_path: Path
) -> None:
    server = two_servers[1]
    _populate(server, recreate="development", extra=list(EXTRA), flags=sorted(FLAGS),
              reverse_envs=True)
    before = _export(cli, server, tmp_path / "before.yaml")
    changed = cli("--url", server.url, "--token", server.admin_token,
                  "flags", "toggle", "dark-mode", "--on", "--env", "qa")
    assert changed.code == 0, changed.err
    after = _export(cli, server, tmp_path / "after.yaml")
    assert after != before

    old, new = before.splitlines(), after.splitlines()
    old_span, new_span = _flag_span(old, "dark-mode"), _flag_span(new, "dark-mode")
    edits = [op for op in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes()
             if op[0] != "equal"]
    assert edits
    for _, i1, i2, j1, j2 in edits:
        assert set(range(i1, i2)) <= set(old_span) and set(range(j1, j2)) <= set(new_span), (
            "\n".join(difflib.unified_diff(old, new, lineterm="")))
    # The diff is the qa environment's switch and nothing else of the flag.
    removed = [old[i] for _, i1, i2, _, _ in edits for i in range(i1, i2)]
    added = [new[j] for _, _, _, j1, j2 in edits for j in range(j1, j2)]
    assert [ln.strip() for ln in removed] == ["enabled: false"]
    assert [ln.strip() for ln in added] == ["enabled: true"]
    qa_line = new.index("    qa:", new_span.start)
    assert all(j > qa_line for _, _, _, j1, j2 in edits for j in range(j1, j2))
