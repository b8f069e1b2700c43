"""The primitive checks and limits shared by flag, rule and segment validation.

Each check returns its value or raises :class:`DefinitionError` naming the dotted path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.values import is_number

KEY_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
VARIANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
FLAG_TYPES = ("boolean", "string", "number", "json")
FLAG_KINDS = ("release", "experiment", "operational", "kill-switch", "permission")
MAX_ID_LEN = 128
MAX_RULES = 1000
MAX_CONDITIONS = 100
MAX_PREREQUISITES = 100
MAX_TARGET_VALUES = 10_000
MAX_SEGMENT_KEYS = 100_000
MAX_VARIANTS = 100
MAX_TAGS = 50
MAX_JSON_DEPTH = 32
BOOLEAN_VARIANTS = {"true": True, "false": False}

def as_object(value: Any, path: str, allowed: frozenset[str] | None = None) -> Mapping[str, Any]:
    if value.__class__ is not dict and not isinstance(value, Mapping):
        raise DefinitionError(path, "must be an object")
    if allowed is not None and not allowed.issuperset(value):
        for field in value:
            if field not in allowed:
                raise DefinitionError(f"{path}.{field}" if path else str(field), "unknown field")
    return value


def as_list(value: Any, path: str, max_items: int) -> list[Any]:
    if value.__class__ is not list and not isinstance(value, list | tuple):
        raise DefinitionError(path, "must be a list")
    if len(value) > max_items:
        raise DefinitionError(path, f"at most {max_items} items")
    return list(value)


def as_str(value: Any, path: str, max_len: int, *, min_len: int = 0) -> str:
    if not isinstance(value, str):
        raise DefinitionError(path, "must be a string")
    if not min_len <= len(value) <= max_len:
        raise DefinitionError(path, f"must be {min_len}..{max_len} characters")
    return value


def as_key(value: Any, path: str, what: str = "key", regex: re.Pattern[str] = KEY_RE) -> str:
    if not isinstance(value, str) or not regex.fullmatch(value):
        raise DefinitionError(path, f"invalid {what} {value!r} (must match ^{regex.pattern}$)")
    return value


def check_json(value: Any, path: str, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise DefinitionError(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise DefinitionError(path, "numbers must be finite")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise DefinitionError(path, "object keys must be strings")
            check_json(item, f"{path}.{k}", depth + 1)
    else:
        raise DefinitionError(path, f"not a JSON value ({type(value).__name__})")

def variant_ref(value: Any, path: str, variants: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or value not in variants:
        raise DefinitionError(path, f"unknown variant {value!r}; one of {', '.join(variants)}")
    return value

def string_list(raw: Any, path: str, max_items: int) -> list[str]:
    items = as_list(raw, path, max_items)
    for i, item in enumerate(items):
        as_str(item, f"{path}[{i}]", 1024)
    return items


def percent(value: Any, path: str) -> int:
    """A 0..100 percent with at most 3 decimals, in thousandths."""
    if not is_number(value) or not 0 <= value <= 100:
        raise DefinitionError(path, "must be a number from 0 to 100")
    thousandths = round(value * 1000)
    if abs(value * 1000 - thousandths) > 1e-6:
        raise DefinitionError(path, "at most 3 decimals")
    return int(thousandths)
