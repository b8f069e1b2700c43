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

# A server process that imports everything, says so (creates the file named first), then waits
# for a line on stdin before it parses its arguments and binds (see ServerProcess.prepare).
_PREPARED = """
import pathlib, sys
import uvicorn
import flagstaff.server.__main__ as entry
import flagstaff.server.app
pathlib.Path(sys.argv[1]).touch()
sys.stdin.readline()
entry.run(entry.parse_args(sys.argv[2:]))
"""


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
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
    # Extra command-line arguments (e.g. ``["--workers", "2"]``).
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    _prepared: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "FLAGSTAFF_BOOTSTRAP_TOKEN": self.admin_token,
            "FLAGSTAFF_DEMO": "false",
            # One server process unless a test asks for workers (the default is one per core).
            "FLAGSTAFF_WORKERS": "1",
            **self.env,
        }

    def prepare(self, timeout: float = 180) -> None:
        """Start the next process up to binding its port: its imports (most of a start on a
        loaded machine) happen now, while this one still serves, so a restart's downtime is the
        server's own startup.  The next :meth:`start` lets it go on."""
        if not self.port:
            self.port = free_port()
        marker = self.log_path.with_suffix(f".prepared-{secrets.token_hex(4)}")
        with self.log_path.open("ab") as log:
            prepared = subprocess.Popen(
                [sys.executable, "-c", _PREPARED, str(marker), "--port", str(self.port),
                 "--database-url", self.database_url, *self.args],
                env=self._environment(), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not marker.exists():
            if prepared.poll() is not None or time.monotonic() > deadline:
                prepared.kill()
                prepared.wait()
                raise RuntimeError(f"the prepared server did not get ready to bind:\n"
                                   f"{self.log_path.read_text()}")
            time.sleep(0.05)
        marker.unlink()
        self._prepared = prepared

    def start(self) -> ServerProcess:
        """Start (or restart, on the same port, so clients can reconnect to the same URL)."""
        if not self.port:
            self.port = free_port()
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            assert prepared.stdin is not None
            prepared.stdin.write(b"go\n")
            prepared.stdin.close()
            self.process = prepared
        else:
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "flagstaff.server", "--port", str(self.port),
                     "--database-url", self.database_url, *self.args],
                    env=self._environment(), stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
        try:
            wait_ready(self.url, self.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}:\n{self.log_path.read_text()}") from None
        return self

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``; returns the exit code.
        A :meth:`prepare`d next process stays ready for :meth:`start`."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        return process.returncode

    def discard_prepared(self) -> None:
        """End a :meth:`prepare`d process that was never started."""
        prepared, self._prepared = self._prepared, None
        if prepared is not None:
            prepared.kill()
            prepared.wait()
            if prepared.stdin is not None:
                prepared.stdin.close()

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
