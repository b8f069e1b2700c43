"""The pure evaluation engine: validate, compile and evaluate flag definitions.

No I/O and no imports from the rest of Flagstaff (a test enforces it). Definitions are validated
when written, compiled once into a :class:`Snapshot`, and evaluated on the hot path with
precomputed structures. The semantics are specified in docs/evaluation.md.
"""

from __future__ import annotations

from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.references import (
    find_cycle,
    flag_references,
    resolve_flag,
    segment_references,
)
from flagstaff.engine.snapshot import Snapshot, compile_snapshot
from flagstaff.engine.types import ErrorCode, EvaluationDetail, FlagType, Reason
from flagstaff.engine.validate import validate_flag, validate_segment

__all__ = [
    "DefinitionError",
    "ErrorCode",
    "EvaluationDetail",
    "FlagType",
    "Reason",
    "Snapshot",
    "compile_snapshot",
    "find_cycle",
    "flag_references",
    "resolve_flag",
    "segment_references",
    "validate_flag",
    "validate_segment",
]
