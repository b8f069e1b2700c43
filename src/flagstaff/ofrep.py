"""The OpenFeature Remote Evaluation Protocol's wire shapes of an evaluation (OFREP v1).

Shared by the server's OFREP routes and the SDK's browser bootstrap
(:func:`flagstaff.sdk.browser.browser_bootstrap`), so a page rendered by a Python back end hands
the browser exactly what the bulk endpoint would answer.  Pure functions of an
:class:`~flagstaff.engine.EvaluationDetail`; no I/O.

Two audiences: **client** shapes (client-side keys, i.e. browsers) carry nothing that describes
targeting or other flags: no rule id (authored names), no prerequisite key (it may name a
server-only flag), no flag version (it changes with edits in other environments, which would
turn an unchanged answer into a new body and cost every browser a refetch).  **Server** shapes
add ``version``, ``ruleId`` and ``prerequisiteKey`` for back ends, which may read definitions
anyway.  OFREP metadata values are booleans, strings or numbers only.
"""

from __future__ import annotations

from typing import Any

from flagstaff.engine import ErrorCode, EvaluationDetail, Reason


def evaluation(key: str, detail: EvaluationDetail, *, client: bool) -> dict[str, Any]:
    """One flag's bulk item: a success ``{key, value, reason, variant, metadata}`` or a failure
    ``{key, errorCode, errorDetails}``."""
    if detail.error_code is not None:
        return failure(key, detail, client=client)
    metadata: dict[str, Any] = {}
    if detail.reason is Reason.PREREQUISITE_FAILED:
        # OpenFeature has no word for a failed prerequisite; keep ours next to its DISABLED.
        metadata["flagstaffReason"] = detail.reason.value
    if detail.in_experiment:
        metadata["inExperiment"] = True
    if not client:
        if detail.version is not None:
            metadata["version"] = detail.version
        if detail.rule_id is not None:
            metadata["ruleId"] = detail.rule_id
        if detail.prerequisite_key is not None:
            metadata["prerequisiteKey"] = detail.prerequisite_key
    return {
        "key": key,
        "value": detail.value,
        "reason": detail.reason.openfeature,
        "variant": detail.variant,
        "metadata": metadata,
    }


# What a browser is told about a failure: the engine's own messages may quote a malformed
# definition's paths or an internal exception, which are for operators, not for pages.
_CLIENT_DETAILS = {
    ErrorCode.PARSE_ERROR: "the flag's configuration is malformed; the server log and the "
                           "flag's page say why",
    ErrorCode.GENERAL: "the flag could not be evaluated",
}


def client_error_message(code: ErrorCode) -> str | None:
    """The message a browser gets instead of the engine's, if it must not see the engine's."""
    return _CLIENT_DETAILS.get(code)


def failure(key: str, detail: EvaluationDetail, *, client: bool) -> dict[str, Any]:
    code = detail.error_code or ErrorCode.GENERAL
    message = _CLIENT_DETAILS.get(code) if client else None
    return {"key": key, "errorCode": code.openfeature,
            "errorDetails": message or detail.error_message or code.value}


def not_found(key: str) -> dict[str, Any]:
    """What a client key gets for a flag it may not see: the same as for a missing flag."""
    return {"key": key, "errorCode": ErrorCode.FLAG_NOT_FOUND.openfeature,
            "errorDetails": f"flag {key!r} not found"}
