"""YAML (and so JSON) parsing that remembers the line of every value.

PyYAML's ``safe_load`` throws the positions away, so the file is composed into nodes and
constructed here, recording ``path -> line`` for every mapping entry and list item.  Validation
errors, which name a dotted path (``rules[1].conditions[0].operator``), are then reported at
the file line of the node they point to.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

import yaml

from flagstaff.flagfile.errors import FlagFileError

Path = tuple[str | int, ...]

# Aliases can make a small document expand exponentially ("billion laughs"); a flag file never
# legitimately needs more values than this.
MAX_VALUES = 500_000

_INDEX = re.compile(r"\[([0-9]+)\]")


class LineIndex:
    """Maps paths into the parsed document to 1-based file lines."""

    def __init__(self) -> None:
        self._lines: dict[Path, int] = {}

    def record(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def line_of(self, path: Path) -> int | None:
        """The line of ``path`` or of its nearest recorded ancestor."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None


def parse(text: str, *, source: str) -> tuple[Any, LineIndex]:
    """Parse YAML text into plain JSON-like values and a line index."""
    try:
        # The reader checks for unprintable characters as soon as it is built.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        raise FlagFileError(f"invalid YAML: {exc}".replace("\n", " "), None, source) from None
    try:
        node = loader.get_single_node()
        index = LineIndex()
        if node is None:
            return None, index
        return _Builder(loader, index, source).build(node, ()), index
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise FlagFileError(
            f"invalid YAML: {problem}", mark.line + 1 if mark else None, source
        ) from None
    except yaml.YAMLError as exc:
        raise FlagFileError(f"invalid YAML: {exc}", None, source) from None
    except RecursionError:
        raise FlagFileError("invalid YAML: nested too deeply", None, source) from None
    finally:
        loader.dispose()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, index: LineIndex, source: str) -> None:
        self.loader = loader
        self.index = index
        self.source = source
        self.count = 0
        self.active: set[int] = set()

    def fail(self, message: str, node: yaml.Node) -> FlagFileError:
        return FlagFileError(message, node.start_mark.line + 1, self.source)

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(f"document too large (more than {MAX_VALUES} values)", node)
        if id(node) in self.active:
            raise self.fail("recursive alias", node)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self.sequence(node, path)
            if isinstance(node, yaml.MappingNode):
                return self.mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise self.fail("unsupported YAML node", node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, dt.datetime | dt.date):
            # JSON has no dates; the engine's date operators take ISO-8601 strings.
            return value.isoformat()
        if isinstance(value, bytes):
            raise self.fail("binary values are not supported", node)
        return value

    def sequence(self, node: yaml.SequenceNode, path: Path) -> list[Any]:
        if node.tag not in (yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG,):
            raise self.fail(f"unsupported YAML tag {node.tag}", node)
        items = []
        for i, child in enumerate(node.value):
            self.index.record((*path, i), child.start_mark.line + 1)
            items.append(self.build(child, (*path, i)))
        return items

    def mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        if node.tag != yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG:
            raise self.fail(f"unsupported YAML tag {node.tag}", node)
        self.loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail("mapping keys must be plain strings", key_node)
            key = _key_text(self.scalar(key_node))
            if key in result:
                raise self.fail(f"duplicate key {key!r}", key_node)
            self.index.record((*path, key), key_node.start_mark.line + 1)
            result[key] = self.build(value_node, (*path, key))
        return result


def _key_text(value: Any) -> str:
    # YAML turns an unquoted `true:` or `4:` into a bool or an int; JSON keys are strings.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def split_path(dotted: str, data: Any) -> Path:
    """Turn ``rules[1].conditions[0].operator`` into a path through ``data``.

    Keys may themselves contain dots (flag, environment and variant keys do), so at each
    mapping the longest existing key that fits is taken.  The part that cannot be followed is
    dropped: the error is then reported at the deepest value that exists.
    """
    path: list[str | int] = []
    rest = dotted
    current = data
    while rest:
        match = _INDEX.match(rest)
        if match:
            i = int(match.group(1))
            if not isinstance(current, list) or i >= len(current):
                break
            path.append(i)
            current = current[i]
            rest = rest[match.end() :]
        else:
            rest = rest.removeprefix(".")
            found = _longest_key(rest, current)
            if found is None:
                break
            key, consumed = found
            path.append(key)
            current = current[key]
            rest = rest[consumed:]
    return tuple(path)


def _longest_key(rest: str, current: Any) -> tuple[str, int] | None:
    if not isinstance(current, dict):
        return None
    best: str | None = None
    for key in current:
        if _fits(rest, key) and (best is None or len(key) > len(best)):
            best = key
    if best is not None:
        return best, len(best)
    if _fits(rest, "values") and "value" in current:
        # The engine names `values`; the file may use the `value` shorthand.
        return "value", len("values")
    return None


def _fits(rest: str, key: str) -> bool:
    return rest == key or rest.startswith((f"{key}.", f"{key}["))


def join_path(path: Sequence[str | int]) -> str:
    """The inverse of :func:`split_path`, for messages."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
