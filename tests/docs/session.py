"""Runs a document's blocks in order, as a reader would in one terminal and one interpreter.

Shell blocks run in ``bash -e -o pipefail``; what a block exports (and the directory it
``cd``s into) carries over to the next block and to the Python blocks.  Python blocks share
one interpreter (``pysession.py``).  A failing block raises ``BlockFailed`` with the
document, the line and everything the block printed.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from tests.docs.blocks import PYTHON, SHELL, Block

BLOCK_TIMEOUT = 120.0
_SHELL_STATE = ("_", "SHLVL", "OLDPWD", "__DOC_ENV_OUT")


class BlockFailed(AssertionError):
    def __init__(self, block: Block, why: str, output: str) -> None:
        super().__init__(
            f"{block.where}: {block.language} block {why}\n"
            f"--- block ---\n{block.script().rstrip()}\n--- output ---\n{output.rstrip()}"
        )


class DocSession:
    """``run(block)`` each block in order; close it (or use ``with``) to end the interpreter."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = dict(env)
        self.cwd = cwd
        self._python: subprocess.Popen[bytes] | None = None
        self._answers: int | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()

    def __enter__(self) -> DocSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run(self, block: Block) -> str:
        """Run one block; returns what it printed, raises BlockFailed if it failed."""
        if block.language in SHELL:
            return self._shell(block)
        if block.language in PYTHON:
            return self._py(block)
        raise ValueError(f"{block.where}: {block.language} blocks are not run")

    def _shell(self, block: Block) -> str:
        with tempfile.NamedTemporaryFile(suffix=".env") as state:
            script = (
                "trap '__rc=$?; env -0 > \"$__DOC_ENV_OUT\"; exit $__rc' EXIT\n"
                "set -eo pipefail\n" + block.script()
            )
            try:
                done = subprocess.run(
                    ["bash", "--noprofile", "--norc", "-c", script],
                    env={**self.env, "__DOC_ENV_OUT": state.name},
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    timeout=BLOCK_TIMEOUT,
                )
            except subprocess.TimeoutExpired as exc:
                output = (exc.output or b"").decode(errors="replace")
                raise BlockFailed(block, f"ran longer than {BLOCK_TIMEOUT:g} s", output) from None
            output = done.stdout.decode(errors="replace")
            if done.returncode != 0:
                raise BlockFailed(block, f"exited {done.returncode}", output)
            exported = Path(state.name).read_bytes().split(b"\0")
        self.env = {}
        for item in exported:
            name, sep, value = item.decode(errors="replace").partition("=")
            if sep and name not in _SHELL_STATE:
                self.env[name] = value
        self.cwd = Path(self.env.pop("PWD", str(self.cwd)))
        return output

    def _py(self, block: Block) -> str:
        process = self._interpreter()
        assert process.stdin is not None and self._answers is not None
        start = self._log.seek(0, os.SEEK_END)
        request = {
            "code": block.body,
            "filename": block.doc,
            "first_line": block.line + 1,
            "env": self.env,
            "cwd": str(self.cwd),
        }
        process.stdin.write(json.dumps(request).encode() + b"\n")
        process.stdin.flush()
        ready, _, _ = select.select([self._answers], [], [], BLOCK_TIMEOUT)
        line = _read_line(self._answers) if ready else b""
        self._log.seek(start)
        output = self._log.read().decode(errors="replace")
        if not ready:
            self.close()
            raise BlockFailed(block, f"ran longer than {BLOCK_TIMEOUT:g} s", output)
        if not line:
            self.close()
            raise BlockFailed(block, "ended the interpreter", output)
        answer = json.loads(line)
        if not answer["ok"]:
            raise BlockFailed(block, "raised", output + answer["error"])
        return output

    def _interpreter(self) -> subprocess.Popen[bytes]:
        if self._python is None:
            read, write = os.pipe()
            self._python = subprocess.Popen(
                [sys.executable, "-u", str(Path(__file__).with_name("pysession.py")), str(write)],
                stdin=subprocess.PIPE,
                stdout=self._log,
                stderr=self._log,
                env=self.env,
                cwd=self.cwd,
                pass_fds=(write,),
            )
            os.close(write)
            self._answers = read
        return self._python

    def close(self) -> None:
        process, self._python = self._python, None
        if process is not None:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._answers is not None:
            os.close(self._answers)
            self._answers = None
        self._log.close()


def _read_line(fd: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data
