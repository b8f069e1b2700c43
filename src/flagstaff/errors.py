"""The domain error hierarchy shared by store, server and CLI.

Every error carries a stable machine-readable ``code``, a human ``message`` and optional
``details`` (for validation errors, ``{"field": "<dotted path>"}``).  The server maps each class
to exactly one HTTP status in one place (``flagstaff.server.errors``); the CLI maps them to exit
codes.  The engine does not import this module: it raises its own ``DefinitionError`` which the
layers above translate into :class:`Invalid`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FlagstaffError(Exception):
    """Base class; ``status`` is the HTTP status the server answers with."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.details: dict[str, Any] = details or {}

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Invalid(FlagstaffError):
    """The request is well-formed JSON but its content is wrong (names the field)."""

    status = 400
    default_code = "invalid"


class Unauthorized(FlagstaffError):
    status = 401
    default_code = "unauthorized"


class Forbidden(FlagstaffError):
    status = 403
    default_code = "forbidden"


class NotFound(FlagstaffError):
    status = 404
    default_code = "not_found"


class Conflict(FlagstaffError):
    status = 409
    default_code = "conflict"


class PreconditionFailed(FlagstaffError):
    """A write carried a stale ``If-Match`` version; nothing was changed."""

    status = 412
    default_code = "precondition_failed"


class TooLarge(FlagstaffError):
    status = 413
    default_code = "too_large"


class RateLimited(FlagstaffError):
    status = 429
    default_code = "rate_limited"


class Unavailable(FlagstaffError):
    """A dependency (the database) cannot be reached; retrying later may succeed."""

    status = 503
    default_code = "unavailable"
