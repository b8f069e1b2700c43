"""Reading flag files: structure checks, spec-format conversion, engine validation.

A file is a mapping with a ``flags:`` list and optional ``segments:`` and ``environments:``
lists, ``policies:`` (approval policies by environment) and ``webhooks:`` (subscriptions; see
``governance``).  Each flag is canonical (contract §1) or in the spec's format (see ``specformat``); both
come out as the engine's normalised canonical definition, so what the server stores, what an
SDK evaluates offline and what ``apply`` compares are the same dicts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from flagstaff.engine import DefinitionError, validate_flag, validate_segment
from flagstaff.flagfile.errors import FlagFileError
from flagstaff.flagfile.governance import read_policies, read_webhooks
from flagstaff.flagfile.specformat import (
    DEFAULT_ENVIRONMENTS,
    PathMap,
    SpecFormatError,
    convert,
    is_spec_format,
    without_default_value,
)
from flagstaff.flagfile.yamltree import LineIndex, Path, join_path, parse, split_path

TOP_LEVEL_KEYS = ("environments", "policies", "segments", "flags", "webhooks")
# Read-only fields the server adds; a file exported from a server carries no meaning in them.
# (``default_value``, the off variant's value, is checked against the definition first.)
SERVER_MANAGED = frozenset({"state", "version", "created_at", "updated_at", "default_value"})
_ENV_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


@dataclass
class FlagFile:
    """Canonical, validated definitions, in file order."""

    flags: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    # None: the file does not manage them (apply leaves the server's as they are).
    policies: dict[str, dict[str, Any]] | None = None
    webhooks: list[dict[str, Any]] | None = None


def load_file(path: str | FsPath) -> FlagFile:
    """Read and validate the flag file at ``path`` (YAML or JSON)."""
    name = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FlagFileError(f"cannot read the file: {reason}", None, name) from None
    return loads(text, source=name)


def loads(text: str, *, source: str = "<string>") -> FlagFile:
    """Parse and validate flag-file text; every problem is a :class:`FlagFileError`."""
    data, index = parse(text, source=source)
    return _Reader(data, index, source).read()


class _Reader:
    def __init__(self, data: Any, index: LineIndex, source: str) -> None:
        self.data = data
        self.index = index
        self.source = source

    def fail(self, path: Path, message: str) -> FlagFileError:
        where = join_path(path)
        return FlagFileError(
            f"{where}: {message}" if where else message, self.index.line_of(path), self.source
        )

    def read(self) -> FlagFile:
        if not isinstance(self.data, dict):
            raise self.fail((), "a flag file is a mapping with a `flags:` list")
        for key in self.data:
            if key not in TOP_LEVEL_KEYS:
                raise self.fail(
                    (key,), f"unknown top-level key (expected one of {', '.join(TOP_LEVEL_KEYS)})"
                )
        declared = self.environments()
        defaults = declared if declared is not None else list(DEFAULT_ENVIRONMENTS)
        segments = [self.segment(item, i) for i, item in enumerate(self.items("segments"))]
        flags = [self.flag(item, i, defaults) for i, item in enumerate(self.items("flags"))]
        self.unique("segments", segments)
        self.unique("flags", flags)
        policies = (
            read_policies(self.data["policies"], self.fail, _ENV_KEY)
            if self.data.get("policies") is not None else None
        )
        webhooks = (
            read_webhooks(self.data["webhooks"], self.fail)
            if self.data.get("webhooks") is not None else None
        )
        if declared is None:
            declared = []
            for flag in flags:
                declared.extend(e for e in flag.get("environments", {}) if e not in declared)
            declared.extend(e for e in policies or {} if e not in declared)
        return FlagFile(
            flags=flags, segments=segments, environments=declared, policies=policies,
            webhooks=webhooks,
        )

    def items(self, name: str) -> list[Any]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail((name,), "must be a list")
        return value

    def environments(self) -> list[str] | None:
        if "environments" not in self.data:
            return None
        result: list[str] = []
        for i, env in enumerate(self.items("environments")):
            if not isinstance(env, str) or not _ENV_KEY.match(env):
                raise self.fail(
                    ("environments", i),
                    f"invalid environment key {env!r} (lowercase letters, digits, '.', '_', '-')",
                )
            if env in result:
                raise self.fail(("environments", i), f"environment {env!r} is listed twice")
            result.append(env)
        return result

    def segment(self, item: Any, i: int) -> dict[str, Any]:
        base: Path = ("segments", i)
        if not isinstance(item, dict):
            raise self.fail(base, "a segment must be a mapping")
        try:
            return validate_segment(_strip(item))
        except DefinitionError as exc:
            raise self.fail((*base, *split_path(exc.path, item)), exc.message) from None

    def flag(self, item: Any, i: int, environments: list[str]) -> dict[str, Any]:
        base: Path = ("flags", i)
        if not isinstance(item, dict):
            raise self.fail(base, "a flag must be a mapping")
        paths: PathMap | None = None
        try:
            if is_spec_format(item):
                definition, paths = convert(item, environments)
            else:
                definition = _strip(without_default_value(item))
        except SpecFormatError as exc:
            raise self.fail((*base, *exc.path), exc.message) from None
        try:
            return _strip(validate_flag(definition))
        except DefinitionError as exc:
            inner = paths.resolve(exc.path, item) if paths else split_path(exc.path, item)
            raise self.fail((*base, *inner), exc.message) from None

    def unique(self, name: str, definitions: list[dict[str, Any]]) -> None:
        seen: set[str] = set()
        for i, definition in enumerate(definitions):
            key = definition.get("key")
            if key in seen:
                raise self.fail((name, i, "key"), f"{key!r} is defined twice")
            seen.add(str(key))


def _strip(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in definition.items() if k not in SERVER_MANAGED}
