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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

from flagstaff import ofrep
from flagstaff.browser.visibility import ClientView, is_client_side, not_found
from flagstaff.engine import ErrorCode, EvaluationDetail, Snapshot
from flagstaff.errors import Forbidden, Invalid
from flagstaff.remote import detail_json
from flagstaff.server import wirejson
from flagstaff.server.answer_memo import AnswerMemo
from flagstaff.server.models import EvaluateIn, EvaluationOut, EvaluationsOut
from flagstaff.server.snapshots import CachedSnapshot

if TYPE_CHECKING:
    # Only named in annotations: relays use these answers too, and have no token store.
    from flagstaff.server.auth import Principal

JSON_TYPE = "application/json"


def ofrep_json(value: Any) -> bytes:
    """An OFREP body: compact, UTF-8 as is."""
    return wirejson.dumps(value)


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

def _item(key: str, detail: EvaluationDetail, client: bool, memo: AnswerMemo | None) -> bytes:
    """``ofrep_json(ofrep.evaluation(key, detail))``, from ``memo`` when it has it."""
    if memo is None:
        return ofrep_json(ofrep.evaluation(key, detail, client=client))
    slot = (key, id(detail), client)
    hit = memo.items.get(slot)
    if hit is not None:
        return hit[1]
    raw = ofrep_json(ofrep.evaluation(key, detail, client=client))
    if detail.error_code is None:  # errors carry per-call messages: not worth keeping
        memo.keep_item(slot, detail, raw)
    return raw


def ofrep_single(
    snapshot: Snapshot, key: str, context: dict[str, Any], *, client: bool,
    memo: AnswerMemo | None = None,
) -> tuple[int, bytes]:
    """One flag: (status, body).  404 for a flag that does not exist (or that a client-side
    key may not see), 400 for one that could not be evaluated.  ``memo``: the snapshot's."""
    if client and not is_client_side(snapshot, key):
        return 404, ofrep_json(ofrep.not_found(key))
    detail = snapshot.evaluate(key, context, None)
    body = _item(key, detail, client, memo)
    if detail.error_code is None:
        return 200, body
    return (404 if detail.error_code is ErrorCode.FLAG_NOT_FOUND else 400), body


def ofrep_bulk(
    snapshot: Snapshot, view: ClientView, context: dict[str, Any], *, client: bool,
    event_streams: Sequence[dict[str, Any]] | None, installation: str,
    memo: AnswerMemo | None = None,
) -> tuple[bytes, str]:
    """Every flag the key's audience may see: (body, its ETag).  ``memo``: the snapshot's.

    The body is ``ofrep_json({"flags": [...], "eventStreams": ...})``, put together from the
    items' encodings.  The tag hashes this database's installation id with the exact body, so it
    changes exactly when this context's answers (or its event-stream URLs) change.  With a memo,
    a combination of outcomes answered before is answered with the same body and tag at once."""
    evaluate = snapshot.evaluate
    keys = view.keys(snapshot, client=client)
    details = [evaluate(k, context) for k in keys]
    if memo is None:
        return _bulk_body(keys, details, client, event_streams, installation, None)
    slot = (client, installation, id(event_streams), *map(id, details))
    hit = memo.bodies.get(slot)
    if hit is not None:
        return hit[1], hit[2]
    raw, tag = _bulk_body(keys, details, client, event_streams, installation, memo)
    if all(d.error_code is None for d in details):  # all shared, so recurring
        memo.keep_body(slot, (event_streams, *details), raw, tag)
    return raw, tag


def _bulk_body(
    keys: Sequence[str], details: list[EvaluationDetail], client: bool,
    event_streams: Sequence[dict[str, Any]] | None, installation: str, memo: AnswerMemo | None,
) -> tuple[bytes, str]:
    items = b",".join([_item(k, d, client, memo) for k, d in zip(keys, details, strict=True)])
    if event_streams:
        raw = b'{"flags":[' + items + b'],"eventStreams":' + ofrep_json(event_streams) + b"}"
    else:
        raw = b'{"flags":[' + items + b"]}"
    seed = _TAG_SEEDS.get(installation)
    if seed is None:  # one installation per process (more in tests)
        if len(_TAG_SEEDS) >= 64:
            _TAG_SEEDS.clear()
        seed = _TAG_SEEDS[installation] = hashlib.blake2b(installation.encode(), digest_size=16)
    digest = seed.copy()
    digest.update(raw)
    return raw, '"' + digest.hexdigest() + '"'


# blake2b(installation + body) as blake2b(installation) carried on with the body.
_TAG_SEEDS: dict[str, hashlib.blake2b] = {}
