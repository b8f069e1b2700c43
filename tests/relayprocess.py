"""One real ``flagstaff relay`` subprocess on a free 127.0.0.1 port (the CLI command itself).

Shared by the relay's journey tests and its benchmark: it starts the relay, waits until it
answers ``/health`` (or ``/ready``), and always stops what it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import free_port

_COMMAND = "from flagstaff.command import main; main()"


@dataclass
class RelayProcess:
    """``start()`` it, use ``url``, then ``stop()`` (or ``kill()``) it."""

    keys: list[str]
    log_path: Path
    upstream: str | None = None
    data_dir: Path | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, ready: bool = True, timeout: float = 60) -> RelayProcess:
        if not self.port:
            self.port = free_port()
        command = [sys.executable, "-c", _COMMAND, "relay", "--port", str(self.port), *self.args]
        if self.upstream is not None:
            command += ["--upstream", self.upstream]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        env = {**os.environ, "FLAGSTAFF_RELAY_KEYS": " ".join(self.keys), **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
        path = "/ready" if ready else "/health"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relay exited early:\n{self.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"relay did not answer {path}:\n{self.log_path.read_text()}")

    def stop(self, timeout: float = 15) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()
