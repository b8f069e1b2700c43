"""What ``flagstaff serve`` shows: readable lines in a terminal, JSON lines for machines.

Real ``flagstaff serve`` processes under a pseudo-terminal (tests/terminal.py), as a person
starts them, and with output to a file, as a service manager does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.serverprocess import wait_ready
from tests.terminal import in_terminal

pytestmark = pytest.mark.slow


def _serve(port: int, database: Path, *extra: str) -> list[str]:
    flagstaff = str(Path(sys.executable).parent / "flagstaff")
    return [flagstaff, "serve", "--port", str(port), "--database-url", f"sqlite:///{database}", *extra]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGSTAFF_")}
    return {**env, "FLAGSTAFF_DEMO": "false", "FLAGSTAFF_WORKERS": "1", **settings}


def test_in_a_terminal_the_log_is_readable_lines(tmp_path: Path) -> None:
    port = free_port()
    with in_terminal(_serve(port, tmp_path / "f.db"), _env()) as terminal:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, terminal.process)
        httpx.get(f"{url}/flags")
        shown = terminal.wait_for("GET /flags 401")
    assert "color_message" not in shown
    lines = [line for line in shown.splitlines() if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")], shown


def test_json_when_asked_even_in_a_terminal_and_never_with_colour_codes(tmp_path: Path) -> None:
    port = free_port()
    env = _env(FLAGSTAFF_LOG_FORMAT="json")
    with in_terminal(_serve(port, tmp_path / "f.db"), env) as terminal:
        wait_ready(f"http://127.0.0.1:{port}", terminal.process)
        httpx.get(f"http://127.0.0.1:{port}/flags")
        shown = terminal.wait_for('"status": 401')
    _assert_json_lines(shown)


def test_json_when_not_a_terminal(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            _serve(port, tmp_path / "f.db"), env=_env(), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        httpx.get(f"http://127.0.0.1:{port}/flags")
    finally:
        process.terminate()
        process.wait(timeout=30)
    _assert_json_lines(log.read_text())


def _assert_json_lines(shown: str) -> None:
    assert "\x1b" not in shown and "\\u001b" not in shown, shown
    entries = []
    for line in shown.splitlines():
        if "admin token" in line or not line.strip():
            continue  # the one-time token goes to stdout as a plain sentence
        entry = json.loads(line)
        assert "color_message" not in entry
        entries.append(entry)
    messages = [e["message"] for e in entries]
    assert any(m.startswith("listening on http://127.0.0.1:") for m in messages), messages
    assert any(e.get("path") == "/flags" and e.get("status") == 401 for e in entries), entries
