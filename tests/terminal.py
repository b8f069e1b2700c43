"""Run a command under a pseudo-terminal, as a person starts it, and read what it shows.

``in_terminal([...])`` starts the process with stdin, stdout and stderr on a pty (so
``isatty()`` is true, as in an interactive shell) and collects the output on a thread;
``wait_for(text)`` blocks until the text appears (generous deadline), ``stop()`` ends it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Terminal:
    process: subprocess.Popen[bytes]
    master: int
    chunks: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def output(self) -> str:
        with self.lock:
            return b"".join(self.chunks).decode(errors="replace").replace("\r\n", "\n")

    def wait_for(self, text: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output:
                return self.output
            if self.process.poll() is not None:
                time.sleep(0.2)  # let the reader drain what is left
                if text in self.output:
                    return self.output
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared; the terminal showed:\n{self.output}")

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every holder of the other end has closed it
                return
            if not chunk:
                return
            with self.lock:
                self.chunks.append(chunk)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl+C, as the person would
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def in_terminal(
    args: list[str], env: dict[str, str], *, columns: int = 120, stderr_to_pipe: bool = False
) -> Iterator[Terminal]:
    """``args`` on a ``columns``-wide pty; with ``stderr_to_pipe`` only stdout is a terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    process = subprocess.Popen(
        args, stdin=slave, stdout=slave,
        stderr=subprocess.DEVNULL if stderr_to_pipe else slave,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"},
        start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    terminal = Terminal(process, master)
    reader = threading.Thread(target=terminal._read, daemon=True)
    reader.start()
    try:
        yield terminal
    finally:
        terminal.stop()
        reader.join(timeout=5)
        os.close(master)
