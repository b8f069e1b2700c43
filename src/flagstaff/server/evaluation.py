"""The answers of the remote-evaluation routes, as functions of what a request carries.

Two callers produce these answers: the documented routes (``routes/evaluate.py``,
``routes/ofrep.py``), and the fast path in front of the framework
(:mod:`flagstaff.server.fast_evaluation`), which answers a clean request from memory without
routing, dependency solving or request models.  Both call the functions here (which
environment a principal evaluates in, the evaluated bodies and
their encoding, the bulk ETag), so an answer is the same bytes whichever of them gave it.
No I/O and no framework objects: the callers resolve the principal, the snapshot and the
browser checks (``server/browser/guard.py``); the OFREP context is read by
``server/ofrep_context.py``, the detail shape is ``flagstaff.remote``'s.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from flagstaff import ofrep
from flagstaff.browser.visibility import ClientView, is_client_side, not_found
from flagstaff.engine import ErrorCode, Snapshot
from flagstaff.errors import Forbidden, Invalid
from flagstaff.remote import detail_json
from flagstaff.server.models import EvaluateIn, EvaluationOut, EvaluationsOut
from flagstaff.server.snapshots import CachedSnapshot

if TYPE_CHECKING:
    # Only named in annotations: relays use these answers too, and have no token store.
    from flagstaff.server.auth import Principal

JSON_TYPE = "application/json"


# One encoder for every answer: ``json.dumps`` with options builds a new one per call.
_OFREP_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def ofrep_json(value: Any) -> bytes:
    """An OFREP body: compact, UTF-8 as is."""
    return _OFREP_ENCODER.encode(value).encode()


_ONE = TypeAdapter(EvaluationOut)
_ALL = TypeAdapter(EvaluationsOut)


def evaluation_out_json(payload: dict[str, Any]) -> bytes:
    """``/evaluate``'s body as the framework renders the route's response model (validated,
    then pydantic's JSON)."""
    return _ONE.dump_json(_ONE.validate_python(payload, from_attributes=True))


def evaluations_out_json(payload: dict[str, Any]) -> bytes:
    """``/evaluate/all``'s body, likewise."""
    return _ALL.dump_json(_ALL.validate_python(payload, from_attributes=True))


def environment_for(principal: Principal, requested: str | None, *, field: str = "environment") -> str:
    """The environment a principal evaluates in: an SDK key's own, or the one a management
    token names explicitly."""
    if principal.is_management:
        if not requested:
            raise Invalid(
                "management tokens must name the environment to evaluate in",
                details={"field": field},
            )
        return requested
    if principal.environment is None:
        raise Forbidden("this token is not bound to an environment")
    if requested and requested != principal.environment:
        raise Forbidden(
            f"this SDK key is bound to {principal.environment!r}, not {requested!r}",
            details={"field": field},
        )
    return principal.environment


# -- /evaluate and /evaluate/all ---------------------------------------------------------

def evaluate_one(
    snapshot: Snapshot, body: EvaluateIn, context: dict[str, Any], *, client: bool,
) -> dict[str, Any]:
    """``POST /evaluate``: one flag; a client-side key cannot see a server-only flag."""
    if client and not is_client_side(snapshot, body.flag):
        detail = not_found(body.flag, body.default)
    else:
        detail = snapshot.evaluate(body.flag, context, body.default)
    return detail_json(body.flag, detail, client=client)


def evaluate_all(
    cached: CachedSnapshot, view: ClientView, environment: str, context: dict[str, Any],
    *, client: bool,
) -> dict[str, Any]:
    """``POST /evaluate/all``: every flag the key's audience may see."""
    snapshot = cached.snapshot
    return {
        "environment": environment,
        "version": cached.version,
        "flags": {key: detail_json(key, snapshot.evaluate(key, context), client=client)
                  for key in view.keys(snapshot, client=client)},
    }


# -- OFREP ---------------------------------------------------------------------------------

def ofrep_single(
    snapshot: Snapshot, key: str, context: dict[str, Any], *, client: bool,
) -> tuple[int, bytes]:
    """One flag: (status, body).  404 for a flag that does not exist (or that a client-side
    key may not see), 400 for one that could not be evaluated."""
    if client and not is_client_side(snapshot, key):
        return 404, ofrep_json(ofrep.not_found(key))
    detail = snapshot.evaluate(key, context, None)
    body = ofrep_json(ofrep.evaluation(key, detail, client=client))
    if detail.error_code is None:
        return 200, body
    return (404 if detail.error_code is ErrorCode.FLAG_NOT_FOUND else 400), body


def ofrep_bulk(
    snapshot: Snapshot, view: ClientView, context: dict[str, Any], *, client: bool,
    event_streams: Sequence[dict[str, Any]] | None, installation: str,
) -> tuple[bytes, str]:
    """Every flag the key's audience may see: (body, its ETag).

    The tag hashes this database's installation id with the exact body, so it changes exactly
    when this context's answers (or its event-stream URLs) change."""
    flags = [ofrep.evaluation(k, snapshot.evaluate(k, context), client=client)
             for k in view.keys(snapshot, client=client)]
    body: dict[str, Any] = {"flags": flags}
    if event_streams:
        body["eventStreams"] = event_streams
    raw = ofrep_json(body)
    tag = '"' + hashlib.blake2b(installation.encode() + raw, digest_size=16).hexdigest() + '"'
    return raw, tag
