"""Server logs: JSON lines for machines, readable lines for a person at a terminal.

``FLAGSTAFF_LOG_FORMAT`` chooses: ``json`` (one JSON object per line, for log shippers),
``text`` (``12:04:31 INFO  GET /flags 200 3.1 ms``), or ``auto`` (the default: text when
stderr is a terminal, JSON otherwise).  JSON never carries terminal colour codes: uvicorn's
``color_message`` duplicate is dropped and escape sequences are removed from every string.

Records emitted while a request is handled carry its ``request_id`` (from a context variable
set by the request-id middleware).  Tokens are never logged, at any level and by any logger:
the access log records method, path, status and duration only, never headers, and every record
that reaches the handler (ours, uvicorn's, the WebSocket library's, which logs handshake headers
at DEBUG, and any other library's through the root logger) passes :class:`RedactingFilter`
first, which masks credential values in its message, its extra fields and its traceback
(``server/redaction.py``).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from flagstaff.server.redaction import redact_text

LogFormat = Literal["auto", "json", "text"]

request_id_var: ContextVar[str | None] = ContextVar("flagstaff_request_id", default=None)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "color_message"}  # uvicorn's coloured copy of the message
)
# CSI and OSC sequences (colours, cursor moves, hyperlinks) and lone escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _STANDARD_ATTRS and not name.startswith("_")
    }


def _clean(value: Any) -> Any:
    return strip_ansi(value) if isinstance(value, str) else value


class RedactingFilter(logging.Filter):
    """Masks credentials in a record before any formatter sees it (it never drops a record).

    The message is rendered once (``msg % args``) and replaced by its masked text, so a secret
    passed as an argument is masked too; string extra fields (uvicorn's ``color_message``
    included) and the traceback text are masked the same way.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the record as logging would show it
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact_text(message), None
        for name, value in _extras(record).items():
            if isinstance(value, str):
                setattr(record, name, redact_text(value))
        coloured = getattr(record, "color_message", None)
        if isinstance(coloured, str):
            record.color_message = redact_text(coloured)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra=`` fields are kept as top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": strip_ansi(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for name, value in _extras(record).items():
            entry[name] = _clean(value)
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_LEVEL_STYLE = {
    "DEBUG": "\x1b[2m",
    "INFO": "\x1b[32m",
    "WARNING": "\x1b[33;1m",
    "ERROR": "\x1b[31;1m",
    "CRITICAL": "\x1b[41;97;1m",
}
_RESET = "\x1b[0m"
_DIM = "\x1b[2m"


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL message key=value ...`` in local time; colour only on a terminal.

    An access-log record reads ``GET /flags 200 3.1 ms``; other records keep their extra
    fields as ``key=value`` after the message.
    """

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self.colour = colour

    def format(self, record: logging.LogRecord) -> str:
        extras = _extras(record)
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        level = record.levelname
        if {"method", "path", "status"} <= extras.keys():
            message = (
                f"{extras.pop('method')} {extras.pop('path')} {extras.pop('status')}"
                f" {extras.pop('duration_ms', '?')} ms"
            )
        else:
            message = strip_ansi(record.getMessage())
        fields = " ".join(f"{k}={_clean(v)}" for k, v in extras.items())
        if self.colour:
            line = (
                f"{_DIM}{when}{_RESET} {_LEVEL_STYLE.get(level, '')}{level:<7}{_RESET} {message}"
                + (f" {_DIM}{fields}{_RESET}" if fields else "")
            )
        else:
            line = f"{when} {level:<7} {message}" + (f" {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + (record.exc_text or self.formatException(record.exc_info))
        return line


def resolve_format(wanted: LogFormat, stream: TextIO) -> Literal["json", "text"]:
    if wanted != "auto":
        return wanted
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure_logging(
    level: str = "INFO", log_format: LogFormat = "auto", *, stream: TextIO | None = None
) -> Literal["json", "text"]:
    """Route the ``flagstaff`` and uvicorn loggers, and through the root logger every other
    library's, through one redacting handler on stderr.

    Returns the format chosen (``auto`` resolved against the stream).
    """
    out = stream or sys.stderr
    chosen = resolve_format(log_format, out)
    handler = logging.StreamHandler(out)
    if chosen == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter(colour=resolve_format("auto", out) == "text"))
    handler.addFilter(RedactingFilter())
    for name in ("flagstaff", "uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # Every other library (the WebSocket library, httpx, SQLAlchemy, asyncio ...) propagates to
    # the root logger: the same handler, so the same masking, instead of Python's last-resort
    # handler, which would print their warnings unmasked.
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # Our middleware writes the access log (with request ids); uvicorn's would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
    return chosen
