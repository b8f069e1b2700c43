"""The engine's single error type: a definition that does not follow the canonical shape."""

from __future__ import annotations


class DefinitionError(ValueError):
    """A flag, segment or snapshot is malformed.

    ``path`` is the dotted path of the offending field (e.g.
    ``environments.production.rules[1].conditions[0].operator``; ``""`` for the whole object)
    so the server can answer 400 naming the field.
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
