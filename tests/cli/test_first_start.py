"""The first start of ``flagstaff serve`` and recovering admin access, as a new user meets them.

A start that cannot listen (the port is taken) fails before it touches the database, so the
one-time admin token is created and printed by the first start that does listen; a person who
lost that token recovers access with ``flagstaff admin reset-token --database-url`` (audited).
"""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.cli.conftest import Result

pytestmark = pytest.mark.timeout(300)
READERS: list[threading.Thread] = []
FLAGSTAFF = shutil.which("flagstaff", path=str(Path(sys.executable).parent)) or "flagstaff"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(port: int, database: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [FLAGSTAFF, "serve", "--port", str(port), "--database-url", f"sqlite:///{database}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _token_line(process: subprocess.Popen[str], timeout: float = 120) -> str:
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    READERS.append(reader)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            continue
        if "admin token" in line:
            return line.strip()
    raise AssertionError("no admin token printed")


def _wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not come up")


def test_a_start_on_a_taken_port_spends_no_token_and_reset_token_recovers_access(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    database = tmp_path / "flagstaff.db"
    port = _free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        failed = _serve(port, database)
        out, err = failed.communicate(timeout=120)
    assert failed.returncode == 1, (out, err)
    assert f"cannot listen on 127.0.0.1:{port}" in err and "no admin token was created" in err
    assert "admin token (shown once" not in out
    assert not database.exists()  # nothing was written

    server = _serve(port, database)
    url = f"http://127.0.0.1:{port}"
    try:
        line = _token_line(server)
        first = line.rsplit(" ", 1)[-1]
        assert first.startswith("fsm_"), line
        _wait_up(url)
        assert httpx.get(f"{url}/tokens", headers={"Authorization": f"Bearer {first}"}).status_code == 200

        # The token is lost: recover on the machine that owns the database.
        reset = cli("admin", "reset-token", "--database-url", f"sqlite:///{database}")
        assert reset.code == 0, reset.err
        second = reset.out.strip().rsplit(" ", 1)[-1]
        assert second.startswith("fsm_") and second != first
        admin = {"Authorization": f"Bearer {second}"}
        tokens = httpx.get(f"{url}/tokens", headers=admin).json()["items"]
        assert sorted(t["name"] for t in tokens if t["role"] == "admin") == ["admin (reset-token)", "bootstrap admin"]
        created = httpx.get(f"{url}/audit", params={"kind": "token", "action": "token_created"}, headers=admin).json()
        assert created["items"][-1]["actor"].startswith("flagstaff admin reset-token (")
    finally:
        server.terminate()
        server.wait(timeout=60)
        for reader in READERS:
            reader.join(timeout=10)
        for pipe in (server.stdout, server.stderr):
            if pipe is not None:
                pipe.close()


def test_reset_token_names_a_database_it_cannot_open(tmp_path: Path, cli: Callable[..., Result]) -> None:
    refused = cli("admin", "reset-token", "--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert refused.code == 2 and "cannot open the database" in refused.err
