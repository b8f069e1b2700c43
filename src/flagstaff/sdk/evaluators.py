"""The client's evaluation functions, built per snapshot so that a call costs one Python frame.

``Client.bool`` (and ``string``, ``number``, ``json``, ``detail``) are not methods but
functions stored on the client and rebuilt whenever the snapshot, the stale state or the
recording mode changes. Each closes over the snapshot's compiled table and the flag type, so a
call is: one dict lookup, a type check, the compiled flag's own function, the evaluation count
(one ``list.append``) and an ``in_experiment`` check. That is the same number of frames as
``Snapshot.evaluate`` itself, which is how the SDK stays within 1.2x of the bare engine
with recording on.

The fast path reads the engine's compiled table (``Snapshot.compiled_table()``: key ->
(FlagType, fn(context, depth, table))), the engine's documented fast-call interface. Anything
unusual (unknown flag, wrong type, an exception, a snapshot without a table) goes through
``Snapshot.evaluate``, which produces the proper error detail and never raises;
``tests/sdk/test_evaluators.py`` checks that both paths agree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from flagstaff.engine import ErrorCode, EvaluationDetail, FlagType, Reason, Snapshot

_EMPTY: Mapping[str, Any] = {}

Count = Callable[[EvaluationDetail], None]
Expose = Callable[[EvaluationDetail, "Mapping[str, Any] | None"], None]


class Evaluators(NamedTuple):
    bool: Callable[..., Any]
    string: Callable[..., Any]
    number: Callable[..., Any]
    json: Callable[..., Any]
    detail: Callable[..., EvaluationDetail]


def not_ready(key: str, default: Any) -> EvaluationDetail:
    return EvaluationDetail(
        value=default, variant=None, reason=Reason.ERROR, error_code=ErrorCode.PROVIDER_NOT_READY,
        error_message="no flag data has been loaded yet", flag_key=key,
    )


def _stale(detail: EvaluationDetail) -> EvaluationDetail:
    if detail.error_code is not None:
        return detail
    return dataclasses.replace(detail, reason=Reason.STALE)


def _no_expose(detail: EvaluationDetail, context: Mapping[str, Any] | None) -> None:
    pass


def build(
    snapshot: Snapshot | None, *, stale: bool, count: Count, expose: Expose | None,
    expose_all: bool,
) -> Evaluators:
    """The five evaluation functions for this snapshot and recording set-up."""
    if snapshot is None:
        return Evaluators(_not_ready_typed(False), _not_ready_typed(""), _not_ready_typed(0),
                          _not_ready_typed(None), _not_ready_detail)
    typed = _typed_all if expose_all else _typed
    exp = expose or _no_expose
    return Evaluators(
        typed(snapshot, FlagType.BOOLEAN, False, count, exp),
        typed(snapshot, FlagType.STRING, "", count, exp),
        typed(snapshot, FlagType.NUMBER, 0, count, exp),
        typed(snapshot, FlagType.JSON, None, count, exp),
        _detail(snapshot, stale, count, exp, expose_all),
    )


def _table(snapshot: Snapshot) -> Mapping[str, Any]:
    return snapshot.compiled_table()


def _typed(snapshot: Snapshot, flag_type: FlagType, fallback: Any, count: Count,
           expose: Expose) -> Callable[..., Any]:
    table = _table(snapshot)
    get, evaluate = table.get, snapshot.evaluate

    def typed(key: str, context: Mapping[str, Any] | None = None, default: Any = fallback) -> Any:
        entry = get(key)
        if entry is not None and entry[0] is flag_type:
            try:
                detail = entry[1](context or _EMPTY, 0, table)
            except Exception:  # the engine's own handling names the error
                detail = evaluate(key, context or _EMPTY, default, expected_type=flag_type)
        else:
            detail = evaluate(key, context or _EMPTY, default, expected_type=flag_type)
        count(detail)
        if detail.in_experiment:
            expose(detail, context)
        return detail.value

    return typed


def _typed_all(snapshot: Snapshot, flag_type: FlagType, fallback: Any, count: Count,
               expose: Expose) -> Callable[..., Any]:
    table = _table(snapshot)
    get, evaluate = table.get, snapshot.evaluate

    def typed(key: str, context: Mapping[str, Any] | None = None, default: Any = fallback) -> Any:
        entry = get(key)
        if entry is not None and entry[0] is flag_type:
            try:
                detail = entry[1](context or _EMPTY, 0, table)
            except Exception:
                detail = evaluate(key, context or _EMPTY, default, expected_type=flag_type)
        else:
            detail = evaluate(key, context or _EMPTY, default, expected_type=flag_type)
        count(detail)
        if detail.error_code is None:
            expose(detail, context)
        return detail.value

    return typed


# The flag type a default stands for: ``detail(key, ctx, False)`` checks the flag is boolean,
# as ``bool(key, ctx, False)`` does, so it explains why the typed call returned the default.
# A default of None (or of another type) checks nothing.
DEFAULT_TYPES: dict[type, FlagType] = {
    bool: FlagType.BOOLEAN, str: FlagType.STRING, int: FlagType.NUMBER,
    float: FlagType.NUMBER, dict: FlagType.JSON, list: FlagType.JSON,
}


def _detail(snapshot: Snapshot, stale: bool, count: Count, expose: Expose,
            expose_all: bool) -> Callable[..., EvaluationDetail]:
    table = _table(snapshot)
    get, evaluate = table.get, snapshot.evaluate
    default_type = DEFAULT_TYPES.get

    def detail(key: str, context: Mapping[str, Any] | None = None, default: Any = None, *,
               expected_type: FlagType | None = None) -> EvaluationDetail:
        if expected_type is None:
            expected_type = default_type(type(default))
        entry = get(key)
        if entry is not None and (expected_type is None or entry[0] is expected_type):
            try:
                result: EvaluationDetail = entry[1](context or _EMPTY, 0, table)
            except Exception:
                result = evaluate(key, context or _EMPTY, default, expected_type=expected_type)
        else:
            result = evaluate(key, context or _EMPTY, default, expected_type=expected_type)
        count(result)
        if result.in_experiment or (expose_all and result.error_code is None):
            expose(result, context)
        if stale:
            return _stale(result)
        return result

    return detail


def _not_ready_typed(fallback: Any) -> Callable[..., Any]:
    def typed(key: str, context: Mapping[str, Any] | None = None, default: Any = fallback) -> Any:
        return default

    return typed


def _not_ready_detail(key: str, context: Mapping[str, Any] | None = None, default: Any = None, *,
                      expected_type: FlagType | None = None) -> EvaluationDetail:
    return not_ready(key, default)
