"""Remote evaluation's answers: an evaluation detail as ``/evaluate`` and ``/evaluate/all`` show
it (docs/contract.md), shared by the server and the relay (OFREP's shapes are in ``ofrep``)."""

from __future__ import annotations

from typing import Any

from flagstaff.engine import EvaluationDetail
from flagstaff.ofrep import client_error_message


def detail_json(key: str, detail: EvaluationDetail, *, client: bool = False) -> dict[str, Any]:
    """A detail as JSON; for client-side keys without what describes targeting."""
    message = detail.error_message
    if client and detail.error_code is not None:
        message = client_error_message(detail.error_code) or message
    return {
        "key": key,
        "value": detail.value,
        "variant": detail.variant,
        "reason": detail.reason.value,
        "rule_id": None if client else detail.rule_id,
        "rule_index": None if client else detail.rule_index,
        "prerequisite_key": None if client else detail.prerequisite_key,
        "error_code": detail.error_code.value if detail.error_code else None,
        "error_message": message,
        "version": detail.version,
        "in_experiment": detail.in_experiment,
    }
