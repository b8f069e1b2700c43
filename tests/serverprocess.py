"""One real ``python -m flagstaff.server`` subprocess on a free 127.0.0.1 port.

Shared by every test that needs a real server process (streams, replicas, crash safety, the CLI,
the browser tests, the SDK): it sets a known bootstrap admin token, waits until the server is
ready, and always stops what it started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import free_port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Until ``/ready`` answers 200 (database reachable and migrated); raises if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not become ready")


@dataclass
class ServerProcess:
    """``start()`` it, use ``url`` and ``admin_token``, then ``stop()`` (or ``kill()``) it."""

    database_url: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: "fsm_" + secrets.token_urlsafe(32))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        """Start (or restart, on the same port, so clients can reconnect to the same URL)."""
        if not self.port:
            self.port = free_port()
        env = {
            **os.environ,
            "FLAGSTAFF_BOOTSTRAP_TOKEN": self.admin_token,
            "FLAGSTAFF_DEMO": "false",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flagstaff.server", "--port", str(self.port),
                 "--database-url", self.database_url],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_ready(self.url, self.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log_path.read_text()}") from None
        return self

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within 15 s; returns the exit code."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash: no shutdown code runs."""
        process, self.process = self.process, None
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)


@contextlib.contextmanager
def server_process(
    database_url: str, log_path: Path, *, admin_token: str | None = None, **env: str
) -> Iterator[ServerProcess]:
    """A started server that is stopped (SIGTERM, then SIGKILL) when the block ends."""
    server = ServerProcess(database_url, log_path, env=env)
    if admin_token is not None:
        server.admin_token = admin_token
    server.start()
    try:
        yield server
    finally:
        server.stop()
