"""Validation and normalisation of one condition (the operand rules of each operator).

Kept apart from the flag/segment shape so that the operator table lives in one place: the
compiler (``operators.py``) relies on every rule enforced here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.instants import (
    InstantError,
    operand_instant,
    operand_window,
    parse_instant,
    zone,
)
from flagstaff.engine.networks import NetworkError, parse_network
from flagstaff.engine.values import compile_regex, is_number
from flagstaff.engine.versions import VersionError, compile_range, parse_version

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
_RANGE = "range"
_CIDR = "cidr"
_NOW = "now"  # an instant compared with the evaluation time
_WINDOW = "window"
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
    "semver_range": _RANGE,
    "in_cidr": _CIDR,
    "not_in_cidr": _CIDR,
    "now_before": _NOW,
    "now_after": _NOW,
    "now_between": _WINDOW,
    "exists": _NONE,
    "segment_match": _SEGMENT,
}

# Operators that read no attribute; a segment_match attribute is ignored (and dropped).
ATTRIBUTE_FREE = frozenset({"segment_match", "now_before", "now_after", "now_between"})
# Options and the operator kinds they apply to; each is left out of the normalised condition
# when it has its default, so conditions without options keep their exact canonical shape.
_IGNORE_CASE_KINDS = frozenset({_SCALAR, _STRING, _REGEX})
_LENIENT_KINDS = frozenset({_SEMVER, _RANGE})
_TIMEZONE_KINDS = frozenset({_NOW, _WINDOW})
_EMPTY_ALLOWED = frozenset({"in", "not_in"})
_LIST_VALUE_OPERATORS = frozenset({"in", "not_in", "segment_match", "in_cidr", "not_in_cidr"})
_CONDITION_FIELDS = frozenset({
    "attribute", "operator", "values", "value", "negate", "ignore_case", "lenient", "timezone",
})


def _check_str(value: Any, path: str, *, max_len: int, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise DefinitionError(path, "must be a string")
    if not value and not allow_empty:
        raise DefinitionError(path, "must not be empty")
    if len(value) > max_len:
        raise DefinitionError(path, f"must be at most {max_len} characters")
    return value


def _check_value(
    op: str, kind: str, value: Any, path: str, key_re: Any, options: dict[str, Any]
) -> None:
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
            raise DefinitionError(
                path, f"{op} needs an RFC 3339 date-time (2024-01-01T10:00:00Z), a date "
                "(2024-01-01) or epoch seconds",
            )
    elif kind == _SEMVER:
        if parse_version(value, lenient=options.get("lenient", False)) is None:
            lenient = " (or, with lenient, 2, 2.0, v2.0.0)" if not options.get("lenient") else ""
            raise DefinitionError(path, f"{op} needs a SemVer 2.0.0 version such as 1.2.3{lenient}")
    elif kind in (_RANGE, _CIDR, _NOW, _WINDOW):
        try:
            if kind == _RANGE:
                compile_range(value)
            elif kind == _CIDR:
                parse_network(value)
            elif kind == _NOW:
                operand_instant(value, options.get("zone"))
            else:
                operand_window(value, options.get("zone"))
        except (VersionError, NetworkError, InstantError) as exc:
            raise DefinitionError(path, f"{op}: {exc}") from None
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


def _options(raw: Mapping[str, Any], op: str, kind: str, path: str) -> dict[str, Any]:
    """The condition's options that differ from their defaults (checked against the operator)."""
    out: dict[str, Any] = {}
    for name, kinds in (("ignore_case", _IGNORE_CASE_KINDS), ("lenient", _LENIENT_KINDS)):
        value = raw.get(name, False)
        if not isinstance(value, bool):
            raise DefinitionError(f"{path}.{name}", "must be a boolean")
        if value:
            if kind not in kinds:
                applies = ", ".join(o for o, k in OPERATORS.items() if k in kinds)
                raise DefinitionError(f"{path}.{name}", f"does not apply to {op} (only to {applies})")
            out[name] = True
    if raw.get("timezone") is not None:
        if kind not in _TIMEZONE_KINDS:
            raise DefinitionError(f"{path}.timezone", f"does not apply to {op} (only to now_* operators)")
        try:
            zone(raw["timezone"])
        except InstantError as exc:
            raise DefinitionError(f"{path}.timezone", str(exc)) from None
        out["timezone"] = raw["timezone"]
    return out


def _attribute(raw: Mapping[str, Any], op: str, path: str) -> str | None:
    attribute = raw.get("attribute")
    if op in ATTRIBUTE_FREE:
        if op == "segment_match":  # documented as ignored: any string (or none) is dropped
            if attribute is not None and not isinstance(attribute, str):
                raise DefinitionError(f"{path}.attribute", "must be a string")
            return None
        if attribute not in (None, ""):
            raise DefinitionError(f"{path}.attribute", f"{op} compares the evaluation time; remove the attribute")
        return None
    if attribute is None:
        raise DefinitionError(f"{path}.attribute", "is required")
    attribute = _check_str(attribute, f"{path}.attribute", max_len=MAX_ATTRIBUTE_LEN)
    if any(not part for part in attribute.split(".")):
        raise DefinitionError(f"{path}.attribute", "empty segment in dotted path")
    return attribute


def validate_condition(raw: Any, path: str, key_re: Any) -> dict[str, Any]:
    """The normalised condition ``{attribute?, operator, values, negate}`` plus any option
    (``ignore_case``, ``lenient``, ``timezone``) that is not at its default."""
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
    attribute = _attribute(raw, op, path)
    if attribute is not None:
        out["attribute"] = attribute
    out["operator"] = op
    options = _options(raw, op, kind, path)

    if "values" in raw and "value" in raw:
        raise DefinitionError(f"{path}.value", "give either value or values, not both")
    if "value" in raw:
        value = raw["value"]
        values_path = f"{path}.value"
        if isinstance(value, list | tuple) and op in _LIST_VALUE_OPERATORS:
            values = list(value)
            item_paths = [f"{values_path}[{i}]" for i in range(len(values))]
        else:
            values = [value]
            item_paths = [values_path]
    else:
        values_path = f"{path}.values"
        values = raw.get("values", [])
        if not isinstance(values, list | tuple):
            raise DefinitionError(values_path, "must be a list")
        values = list(values)
        item_paths = [f"{values_path}[{i}]" for i in range(len(values))]
    if len(values) > MAX_VALUES:
        raise DefinitionError(values_path, f"at most {MAX_VALUES} values")
    if kind == _NONE:
        if values:
            raise DefinitionError(values_path, "exists takes no values (use negate for absence)")
    elif not values and op not in _EMPTY_ALLOWED:
        raise DefinitionError(values_path, f"{op} needs at least one value")
    checks = {"lenient": options.get("lenient", False)}
    if "timezone" in options:
        checks["zone"] = zone(options["timezone"])
    for value, item_path in zip(values, item_paths, strict=True):
        _check_value(op, kind, value, item_path, key_re, checks)
    out["values"] = values

    negate = raw.get("negate", False)
    if not isinstance(negate, bool):
        raise DefinitionError(f"{path}.negate", "must be a boolean")
    out["negate"] = negate
    out.update(options)
    return out
