"""The single error type of flag files: a message that names the file and line."""

from __future__ import annotations


class FlagFileError(Exception):
    """A flag file cannot be read, parsed or validated.

    ``str(error)`` is ``"<path>:<line>: <message>"`` (the parts that are known), so a CLI can
    print it as it is and an editor can jump to the place.
    """

    def __init__(self, message: str, line: int | None = None, path: str | None = None) -> None:
        self.message = message
        self.line = line
        self.path = path
        location = path or ""
        if line is not None:
            location = f"{location}:{line}" if location else f"line {line}"
        super().__init__(f"{location}: {message}" if location else message)
