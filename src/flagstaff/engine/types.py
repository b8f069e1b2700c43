"""Evaluation results: ``EvaluationDetail`` and the ``Reason``, ``ErrorCode`` and ``FlagType`` enums.

Each enum has ``.openfeature``, the string OpenFeature uses for it, so the server (OFREP) and
the OpenFeature provider translate in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class FlagType(Enum):
    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    JSON = "json"

    @property
    def openfeature(self) -> str:
        return _FLAG_TYPE_OF[self]


# OpenFeature splits numbers into INTEGER and FLOAT; ours are one type, FLOAT covers both.
_FLAG_TYPE_OF = {
    FlagType.BOOLEAN: "BOOLEAN",
    FlagType.STRING: "STRING",
    FlagType.NUMBER: "FLOAT",
    FlagType.JSON: "OBJECT",
}


class Reason(Enum):
    """Why a value was served, in the order the engine checks (docs/evaluation.md)."""

    ERROR = "ERROR"
    DISABLED = "DISABLED"
    PREREQUISITE_FAILED = "PREREQUISITE_FAILED"
    TARGET_MATCH = "TARGET_MATCH"
    RULE_MATCH = "RULE_MATCH"
    SPLIT = "SPLIT"
    FALLTHROUGH = "FALLTHROUGH"
    DEFAULT = "DEFAULT"
    # Never produced by the engine: the SDK reports it when it serves a cached snapshot it
    # could not refresh (OpenFeature's STALE).
    STALE = "STALE"

    @property
    def openfeature(self) -> str:
        return _REASON_OF[self]


# Every reason maps to one of OpenFeature's standard reasons, because providers parse the
# reason into their enum (the Python OFREP provider does ``Reason[data["reason"]]`` and would
# fail on a name it does not know).  A failed prerequisite serves the off variant, exactly as
# if the flag were disabled for this context, so it is DISABLED; the precise cause stays
# visible in ``prerequisite_key`` (OFREP metadata ``prerequisiteKey``).  A fixed fallthrough
# is OpenFeature's DEFAULT ("no targeting matched, configured value").
_REASON_OF = {
    Reason.ERROR: "ERROR",
    Reason.DISABLED: "DISABLED",
    Reason.PREREQUISITE_FAILED: "DISABLED",
    Reason.TARGET_MATCH: "TARGETING_MATCH",
    Reason.RULE_MATCH: "TARGETING_MATCH",
    Reason.SPLIT: "SPLIT",
    Reason.FALLTHROUGH: "DEFAULT",
    Reason.DEFAULT: "DEFAULT",
    Reason.STALE: "STALE",
}


class ErrorCode(Enum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    PARSE_ERROR = "PARSE_ERROR"
    # A split by the targeting key, and the context has none.
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    GENERAL = "GENERAL"
    # Never produced by the engine: the SDK's answer before its first snapshot arrived.
    PROVIDER_NOT_READY = "PROVIDER_NOT_READY"

    @property
    def openfeature(self) -> str:
        # The names are OpenFeature's own error codes.
        return self.value


@dataclass(frozen=True, slots=True)
class EvaluationDetail:
    """One evaluation's outcome. Immutable and shared: static outcomes are built at compile time.

    ``value`` of a json flag is the compiled variant value itself; treat it as read-only.
    ``version`` is the flag's version (``None`` for errors about a flag that is not there).
    ``in_experiment`` is True when a running experiment assigned the variant (contract §9):
    only those evaluations count as experiment exposures.
    """

    value: Any
    variant: str | None
    reason: Reason
    rule_id: str | None = None
    rule_index: int | None = None
    prerequisite_key: str | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    flag_key: str | None = None
    version: int | None = None
    in_experiment: bool = False


_new = object.__new__
# The slots' own descriptors: building a static outcome at compile time this way costs half
# of the frozen dataclass __init__ (which goes through object.__setattr__ per field), and a
# 10,000-flag snapshot builds over 100,000 of them.
_SET = tuple(getattr(EvaluationDetail, name).__set__ for name in EvaluationDetail.__slots__)
(_set_value, _set_variant, _set_reason, _set_rule_id, _set_rule_index, _set_prerequisite_key,
 _set_error_code, _set_error_message, _set_flag_key, _set_version, _set_in_experiment) = _SET


def static_detail(
    value: Any, variant: str, reason: Reason, rule_id: str | None, rule_index: int | None,
    prerequisite_key: str | None, flag_key: str, version: int, in_experiment: bool = False,
) -> EvaluationDetail:
    """``EvaluationDetail(...)`` of a compiled outcome (no error), built field by field."""
    detail: EvaluationDetail = _new(EvaluationDetail)
    _set_value(detail, value)
    _set_variant(detail, variant)
    _set_reason(detail, reason)
    _set_rule_id(detail, rule_id)
    _set_rule_index(detail, rule_index)
    _set_prerequisite_key(detail, prerequisite_key)
    _set_error_code(detail, None)
    _set_error_message(detail, None)
    _set_flag_key(detail, flag_key)
    _set_version(detail, version)
    _set_in_experiment(detail, in_experiment)
    return detail
