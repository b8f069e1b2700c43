"""The CLI's error and exit codes: 0 ok, 1 invalid input, 2 server or network error, 3 drift
(``apply --dry-run --exit-code``: the server differs from the file)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INVALID = 1
    SERVER = 2
    DRIFT = 3


class CliError(Exception):
    """One clear message for the user, and the exit code that goes with it."""

    def __init__(
        self, message: str, code: ExitCode = ExitCode.INVALID, *, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        # The HTTP status that caused it, when a server answered.
        self.status = status
