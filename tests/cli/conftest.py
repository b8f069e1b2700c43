"""A real server process for the end-to-end CLI tests, and a way to run the CLI in-process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flagstaff.cli import run
from tests.serverprocess import server_process

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
    directory = tmp_path_factory.mktemp("server")
    # The CLI tests use the demo flags, as a first start does.
    with server_process(
        f"sqlite:///{directory / 'flagstaff.db'}", directory / "server.log", admin_token=TOKEN,
        FLAGSTAFF_LOG_LEVEL="WARNING", FLAGSTAFF_DEMO="true",
    ) as process:
        yield Server(url=process.url, token=TOKEN)


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


@pytest.fixture
def admin(server: Server, cli: Any) -> Any:
    """``admin("flags", "list")``: the CLI against the module's server with its admin token."""
    def invoke(*args: str) -> Result:
        return cli("--url", server.url, "--token", server.token, *args)  # type: ignore[no-any-return]

    return invoke
