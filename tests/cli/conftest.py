"""A real server process for the end-to-end CLI tests, and a way to run the CLI in-process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from flagstaff.cli import run
from tests.conftest import free_port

TOKEN = "fsm_cli_e2e_admin_token_0123456789"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Server:
    url: str
    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    directory = tmp_path_factory.mktemp("server")
    env = {**os.environ, "FLAGSTAFF_BOOTSTRAP_TOKEN": TOKEN, "FLAGSTAFF_LOG_LEVEL": "WARNING"}
    log = (directory / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "flagstaff.server", "--port", str(port),
         "--database-url", f"sqlite:///{directory / 'flagstaff.db'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield Server(url=url, token=TOKEN)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``cli("flags", "list")`` runs the CLI in-process and returns code, stdout and stderr."""
    for name in ("FLAGSTAFF_URL", "FLAGSTAFF_TOKEN", "FLAGSTAFF_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLAGSTAFF_CONFIG", str(tmp_path / "no-config.toml"))

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke
