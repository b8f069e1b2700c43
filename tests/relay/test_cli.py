"""``flagstaff relay`` refuses what it cannot run with one line and exit code 1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from flagstaff.cli import run


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAGSTAFF_RELAY_KEYS", raising=False)


def test_a_relay_needs_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["relay", "--upstream", "http://127.0.0.1:8400"]) == 1
    assert "at least one server-side SDK key" in capsys.readouterr().err


def test_a_relay_needs_something_to_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["relay", "--key", "fss_x"]) == 1
    assert "nothing to serve" in capsys.readouterr().err


def test_a_busy_port_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run(["relay", "--key", "fss_x", "--data-dir", str(tmp_path),
                    "--port", str(port)])
    assert code == 1 and f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
