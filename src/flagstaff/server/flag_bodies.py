"""Flag bodies over HTTP: the spec's shapes in, the canonical shape (plus ``default_value``) out.

``POST /flags`` and ``PUT /flags/{key}`` accept the canonical definition and the spec's
camelCase (003) and snake_case (001) shapes.  The translation is the flag-file loader's
(``flagstaff.flagfile.specformat``); this module only applies it to a request and names every
validation error's field as the client sent it (``default_value``, ``rules[0].value``), also
for errors the store finds later (a missing segment, an unknown environment).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flagstaff.errors import Invalid
from flagstaff.flagfile.specformat import (
    PathMap,
    SpecFormatError,
    convert,
    default_value,
    is_spec_format,
    without_default_value,
)
from flagstaff.flagfile.yamltree import join_path


@dataclass(frozen=True)
class IncomingFlag:
    """A request's flag as the canonical definition, and how to name its fields as sent."""

    definition: dict[str, Any]
    paths: PathMap | None = None
    source: Mapping[str, Any] | None = None

    @contextmanager
    def fields_as_sent(self) -> Iterator[None]:
        """Re-raise the store's ``Invalid`` with the field path the client used."""
        try:
            yield
        except Invalid as exc:
            field = exc.details.get("field")
            if self.paths is None or not isinstance(field, str) or not field:
                raise
            sent = self.paths.field(field, self.source)
            if sent == field:
                raise
            message = exc.message.replace(field, sent)
            raise Invalid(
                message if sent in message else f"{sent}: {message}",
                code=exc.code, details={**exc.details, "field": sent},
            ) from None


def incoming_flag(body: Mapping[str, Any], *, environments: Callable[[], list[str]]) -> IncomingFlag:
    """The canonical definition of a request body; ``environments()`` lists the server's
    environments, to which a spec-shaped flag applies (called only for those)."""
    try:
        if is_spec_format(body):
            definition, paths = convert(body, environments())
            return IncomingFlag(definition, paths, body)
        return IncomingFlag(without_default_value(body))
    except SpecFormatError as exc:
        field = join_path(exc.path)
        raise Invalid(f"{field}: {exc.message}" if field else exc.message,
                      details={"field": field}) from None


def outgoing_flag(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical definition as read, plus the read-only ``default_value``."""
    out = dict(definition)
    out["default_value"] = default_value(definition)
    return out
