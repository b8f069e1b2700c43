"""Validation and normalisation of one condition (the operand rules of each operator).

Kept apart from the flag/segment shape so that the operator table lives in one place: the
compiler (``operators.py``) relies on every rule enforced here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.values import compile_regex, is_number, parse_instant, parse_semver

MAX_ATTRIBUTE_LEN = 256
MAX_VALUES = 10_000
MAX_STRING_VALUE_LEN = 1024
MAX_REGEX_LEN = 1000

# operator -> kind of operand it needs
_SCALAR = "scalar"  # str, number or bool
_STRING = "string"
_REGEX = "regex"
_NUMBER = "number"
_INSTANT = "instant"
_SEMVER = "semver"
_NONE = "none"
_SEGMENT = "segment"

OPERATORS: dict[str, str] = {
    "equals": _SCALAR,
    "not_equals": _SCALAR,
    "in": _SCALAR,
    "not_in": _SCALAR,
    "contains": _STRING,
    "not_contains": _STRING,
    "starts_with": _STRING,
    "ends_with": _STRING,
    "regex": _REGEX,
    "gt": _NUMBER,
    "gte": _NUMBER,
    "lt": _NUMBER,
    "lte": _NUMBER,
    "before": _INSTANT,
    "after": _INSTANT,
    "semver_eq": _SEMVER,
    "semver_gt": _SEMVER,
    "semver_lt": _SEMVER,
    "exists": _NONE,
    "segment_match": _SEGMENT,
}

_LIST_VALUE_OPERATORS = frozenset({"in", "not_in", "segment_match"})
_CONDITION_FIELDS = frozenset({"attribute", "operator", "values", "value", "negate"})


def _check_str(value: Any, path: str, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DefinitionError(path, "must be a string")
    if not value and not allow_empty:
        raise DefinitionError(path, "must not be empty")
    if len(value) > max_len:
        raise DefinitionError(path, f"must be at most {max_len} characters")
    return value


def _check_value(op: str, kind: str, value: Any, path: str, key_re: Any) -> None:
    if kind == _SCALAR:
        if isinstance(value, str):
            _check_str(value, path, max_len=MAX_STRING_VALUE_LEN, allow_empty=True)
        elif not (isinstance(value, bool) or is_number(value)):
            raise DefinitionError(path, f"{op} compares strings, numbers or booleans")
    elif kind == _STRING:
        _check_str(value, path, max_len=MAX_STRING_VALUE_LEN, allow_empty=True)
    elif kind == _REGEX:
        _check_str(value, path, max_len=MAX_REGEX_LEN, allow_empty=True)
        try:
            compile_regex(value)
        except Exception as exc:  # re2.error, and TypeError for odd input
            raise DefinitionError(path, f"invalid regular expression: {exc}") from None
    elif kind == _NUMBER:
        if not is_number(value):
            raise DefinitionError(path, f"{op} needs a finite number")
    elif kind == _INSTANT:
        if parse_instant(value) is None:
            raise DefinitionError(path, f"{op} needs an ISO-8601 date-time or epoch seconds")
    elif kind == _SEMVER:
        if parse_semver(value) is None:
            raise DefinitionError(path, f"{op} needs a SemVer 2.0.0 version such as 1.2.3")
    elif kind == _SEGMENT and (not isinstance(value, str) or not key_re.fullmatch(value)):
        raise DefinitionError(path, "must be a segment key")


_FAST_STRING_OPERATORS = frozenset(
    op for op, kind in OPERATORS.items() if kind in (_SCALAR, _STRING)
)


def fast_condition(raw: dict[str, Any]) -> dict[str, Any] | None:
    """The already-canonical common shape (string operands), or ``None`` for the full check.

    Loading a snapshot validates every condition again, so the shape stored by the server
    (``attribute``, ``operator``, ``values``: strings, ``negate``) is checked in one tight pass;
    anything else, valid or not, goes through :func:`validate_condition`'s full path, which
    also produces the error messages.
    """
    checked = fast_conditions([raw])
    return None if checked is None else checked[0]


def fast_conditions(conditions: list[Any], *, share: bool = False) -> list[dict[str, Any]] | None:
    """:func:`fast_condition` over a rule's whole list in one loop; ``None`` if any is not fast.

    ``share``: return ``conditions`` itself when it is already canonical (no copies), for
    callers that only read the result before dropping it (loading a snapshot).
    """
    out = []
    # Rules of one flag mostly name the same few attributes: each is checked once.
    attributes: set[str] = set()
    for raw in conditions:
        if raw.__class__ is not dict or len(raw) != 4:
            return None
        op = raw.get("operator")
        attribute = raw.get("attribute")
        values = raw.get("values")
        if (
            op not in _FAST_STRING_OPERATORS
            or attribute.__class__ is not str
            or values.__class__ is not list
            or raw.get("negate").__class__ is not bool
            or not 0 < len(values) <= MAX_VALUES
        ):
            return None
        if attribute not in attributes:
            if (
                not 0 < len(attribute) <= MAX_ATTRIBUTE_LEN
                or attribute[0] == "."
                or attribute[-1] == "."
                or ".." in attribute
            ):
                return None
            attributes.add(attribute)
        for value in values:
            if value.__class__ is not str or len(value) > MAX_STRING_VALUE_LEN:
                return None
        if not share:
            out.append(
                {"attribute": attribute, "operator": op, "values": list(values),
                 "negate": raw["negate"]}
            )
    return conditions if share else out


def validate_condition(raw: Any, path: str, key_re: Any) -> dict[str, Any]:
    """The normalised condition ``{attribute?, operator, values, negate}``."""
    if raw.__class__ is dict:
        fast = fast_condition(raw)
        if fast is not None:
            return fast
    if not isinstance(raw, Mapping):
        raise DefinitionError(path, "must be an object")
    for field in raw:
        if field not in _CONDITION_FIELDS:
            raise DefinitionError(f"{path}.{field}", "unknown field")
    op = raw.get("operator")
    if not isinstance(op, str) or op not in OPERATORS:
        raise DefinitionError(
            f"{path}.operator", f"unknown operator {op!r}; one of {', '.join(OPERATORS)}"
        )
    kind = OPERATORS[op]
    out: dict[str, Any] = {}
    if "attribute" in raw and raw["attribute"] is not None:
        out["attribute"] = _check_str(
            raw["attribute"], f"{path}.attribute", max_len=MAX_ATTRIBUTE_LEN
        )
        if any(not part for part in out["attribute"].split(".")):
            raise DefinitionError(f"{path}.attribute", "empty segment in dotted path")
    elif kind != _SEGMENT:
        raise DefinitionError(f"{path}.attribute", "is required")
    out["operator"] = op

    if "values" in raw and "value" in raw:
        raise DefinitionError(f"{path}.value", "give either value or values, not both")
    if "value" in raw:
        value = raw["value"]
        values_path = f"{path}.value"
        if isinstance(value, list | tuple) and op in _LIST_VALUE_OPERATORS:
            values = list(value)
        else:
            values = [value]
    else:
        values_path = f"{path}.values"
        values = raw.get("values", [])
        if not isinstance(values, list | tuple):
            raise DefinitionError(values_path, "must be a list")
        values = list(values)
    if len(values) > MAX_VALUES:
        raise DefinitionError(values_path, f"at most {MAX_VALUES} values")
    if kind == _NONE:
        if values:
            raise DefinitionError(values_path, "exists takes no values (use negate for absence)")
    elif not values:
        raise DefinitionError(values_path, f"{op} needs at least one value")
    for i, value in enumerate(values):
        _check_value(op, kind, value, f"{values_path}[{i}]", key_re)
    out["values"] = values

    negate = raw.get("negate", False)
    if not isinstance(negate, bool):
        raise DefinitionError(f"{path}.negate", "must be a boolean")
    out["negate"] = negate
    return out
