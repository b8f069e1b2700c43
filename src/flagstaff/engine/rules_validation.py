"""Validation of rules and of what they serve (a variant or a percentage rollout).

``rules`` is shared by flags (each rule serves something) and segments (rules only match).
Snapshot loading re-validates every rule of every flag, so canonical rules take a one-pass
fast path (``shared_rules``, ``fast_rule``); the full path gives the same result and is the one
that formats paths and reports errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flagstaff.engine.checks import (
    KEY_RE,
    MAX_CONDITIONS,
    MAX_ID_LEN,
    MAX_RULES,
    MAX_VARIANTS,
    as_list,
    as_object,
    as_str,
    variant_ref,
)
from flagstaff.engine.conditions import (
    MAX_ATTRIBUTE_LEN,
    fast_condition,
    fast_conditions,
    validate_condition,
)
from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.values import is_number

_ROLLOUT_FIELDS = frozenset({"variations", "bucket_by", "salt"})
_VARIATION_FIELDS = frozenset({"variant", "weight"})


def validate_serve(raw: Any, path: str, variants: Mapping[str, Any]) -> dict[str, Any]:
    if raw.__class__ is dict and len(raw) == 1:
        variant = raw.get("variant")
        if variant.__class__ is str and variant in variants:  # the common shape, checked at once
            return {"variant": variant}
    serve = as_object(raw, path)
    if ("variant" in serve) == ("rollout" in serve) or len(serve) != 1:
        raise DefinitionError(path, 'must be exactly one of {"variant": ...} or {"rollout": ...}')
    if "variant" in serve:
        return {"variant": variant_ref(serve["variant"], f"{path}.variant", variants)}
    rpath = f"{path}.rollout"
    roll = as_object(serve["rollout"], rpath, _ROLLOUT_FIELDS)
    variations = as_list(roll.get("variations"), f"{rpath}.variations", MAX_VARIANTS)
    if not variations:
        raise DefinitionError(f"{rpath}.variations", "must not be empty")
    seen: set[str] = set()
    total = 0
    out_vars = []
    # Paths are formatted only for an error: snapshots re-validate every rollout on load.
    for i, item in enumerate(variations):
        if item.__class__ is not dict or not _VARIATION_FIELDS.issuperset(item):
            item = as_object(item, f"{rpath}.variations[{i}]", _VARIATION_FIELDS)
        name = item.get("variant")
        if name.__class__ is not str or name not in variants:
            name = variant_ref(name, f"{rpath}.variations[{i}].variant", variants)
        if name in seen:
            raise DefinitionError(f"{rpath}.variations[{i}].variant", f"variant {name!r} appears twice")
        seen.add(name)
        weight: Any = item.get("weight")
        if not is_number(weight) or not 0 <= weight <= 100:
            raise DefinitionError(f"{rpath}.variations[{i}].weight", "must be a number from 0 to 100")
        thousandths = round(weight * 1000)
        if abs(weight * 1000 - thousandths) > 1e-6:
            raise DefinitionError(f"{rpath}.variations[{i}].weight", "at most 3 decimals")
        total += thousandths
        out_vars.append({"variant": name, "weight": weight})
    if total != 100_000:
        raise DefinitionError(f"{rpath}.variations", f"weights sum to {total / 1000:g}, not 100")
    out: dict[str, Any] = {"variations": out_vars}
    if roll.get("bucket_by") is not None:
        out["bucket_by"] = _bucket_by(roll["bucket_by"], f"{rpath}.bucket_by")
    if roll.get("salt") is not None:
        out["salt"] = as_str(roll["salt"], f"{rpath}.salt", MAX_ID_LEN, min_len=1)
    return {"rollout": out}


MAX_BUCKET_PATHS = 4


def _bucket_by(raw: Any, path: str) -> str | list[str]:
    """An attribute path, or a list of paths tried in order (the first usable value wins)."""
    if isinstance(raw, list):
        if not 1 <= len(raw) <= MAX_BUCKET_PATHS:
            raise DefinitionError(path, f"a list of 1..{MAX_BUCKET_PATHS} attribute paths")
        return [as_str(p, f"{path}[{i}]", MAX_ATTRIBUTE_LEN, min_len=1) for i, p in enumerate(raw)]
    return as_str(raw, path, MAX_ATTRIBUTE_LEN, min_len=1)


_FLAG_RULE_FIELDS = frozenset({"id", "description", "conditions", "serve"})
_SEGMENT_RULE_FIELDS = frozenset({"id", "description", "conditions"})


def _canonical_head(rule: dict[str, Any], ids: set[str]) -> bool:
    """A fresh, valid ``id`` and a ``conditions`` list within the limit."""
    rule_id = rule.get("id")
    conditions = rule.get("conditions")
    return (
        rule_id.__class__ is str
        and 0 < len(rule_id) <= MAX_ID_LEN
        and rule_id not in ids
        and conditions.__class__ is list
        and len(conditions) <= MAX_CONDITIONS
    )


def _fixed_serve(rule: dict[str, Any], variants: Mapping[str, Any]) -> str | None:
    """The variant of a canonical ``{"variant": ...}`` serve naming a known variant."""
    serve = rule.get("serve")
    if serve.__class__ is not dict or len(serve) != 1:
        return None
    variant = serve.get("variant")
    return variant if variant.__class__ is str and variant in variants else None


def fast_rule(
    rule: Any, variants: Mapping[str, Any] | None, ids: set[str], share: bool
) -> dict[str, Any] | None:
    """A rule already in canonical form, checked in one pass; ``None`` = use the full path.

    The full path below gives the same result for these and is the one that reports errors.
    ``share``: the canonical input itself is returned instead of a copy.
    """
    if rule.__class__ is not dict or "description" in rule or not _canonical_head(rule, ids):
        return None
    if len(rule) != (2 if variants is None else 3):
        return None
    variant = None if variants is None else _fixed_serve(rule, variants)
    if variants is not None and variant is None:
        return None
    checked = fast_conditions(rule["conditions"], share=share)
    if checked is None:
        return None
    if share:
        return rule
    if variant is None:
        return {"id": rule["id"], "conditions": checked}
    return {"id": rule["id"], "conditions": checked, "serve": {"variant": variant}}


def shared_rules(rules: list[Any], variants: Mapping[str, Any] | None) -> list[Any] | None:
    """``rules`` itself when every rule is canonical with a fixed serve, else ``None``.

    Loading a snapshot validates every rule of every flag again: one loop over the rules and
    one :func:`fast_conditions` call for all their conditions, instead of two calls per rule.
    The exact key count with ``id``, ``conditions`` (and ``serve``) present leaves no room for
    any other field.
    """
    size = 2 if variants is None else 3
    ids: set[str] = set()
    conditions: list[Any] = []
    for rule in rules:
        if rule.__class__ is not dict or len(rule) != size or not _canonical_head(rule, ids):
            return None
        if variants is not None and _fixed_serve(rule, variants) is None:
            return None
        ids.add(rule["id"])
        conditions += rule["conditions"]
    if fast_conditions(conditions, share=True) is None:
        return None
    return rules


def validate_rules(
    raw: Any, path: str, variants: Mapping[str, Any] | None, share: bool = False
) -> list[dict[str, Any]]:
    """Flag rules (``variants`` given, each needs ``serve``) or segment rules (no serve).

    Snapshots re-validate every rule on load, so paths are only formatted for an error.
    """
    if share and raw.__class__ is list and len(raw) <= MAX_RULES:
        shared = shared_rules(raw, variants)
        if shared is not None:
            return shared
    rules = as_list(raw, path, MAX_RULES)
    allowed = _FLAG_RULE_FIELDS if variants is not None else _SEGMENT_RULE_FIELDS
    explicit: set[Any] | None = None
    out = []
    ids: set[str] = set()
    for i, rule in enumerate(rules):
        fast = fast_rule(rule, variants, ids, share)
        if fast is not None:
            ids.add(fast["id"])
            out.append(fast)
            continue
        if rule.__class__ is not dict or not allowed.issuperset(rule):
            rule = as_object(rule, f"{path}[{i}]", allowed)
        rule_id = rule.get("id")
        if rule_id is None:
            if explicit is None:
                explicit = {r.get("id") for r in rules if isinstance(r, Mapping)}
            # rule-<position>, skipping numbers taken by explicit ids so generation never collides
            n = i + 1
            rule_id = f"rule-{n}"
            while rule_id in explicit or rule_id in ids:
                n += 1
                rule_id = f"rule-{n}"
        if rule_id.__class__ is not str or not 0 < len(rule_id) <= MAX_ID_LEN:
            as_str(rule_id, f"{path}[{i}].id", MAX_ID_LEN, min_len=1)
        if rule_id in ids:
            raise DefinitionError(f"{path}[{i}].id", f"duplicate rule id {rule_id!r}")
        ids.add(rule_id)
        body: dict[str, Any] = {"id": rule_id}
        if rule.get("description") is not None:
            body["description"] = as_str(rule["description"], f"{path}[{i}].description", 2000)
        conditions = rule.get("conditions", [])
        if conditions.__class__ is not list or len(conditions) > MAX_CONDITIONS:
            conditions = as_list(conditions, f"{path}[{i}].conditions", MAX_CONDITIONS)
        checked = []
        for j, c in enumerate(conditions):
            # The canonical shape is checked at once, without building the condition's path.
            fast_c = fast_condition(c) if c.__class__ is dict else None
            checked.append(
                fast_c if fast_c is not None
                else validate_condition(c, f"{path}[{i}].conditions[{j}]", KEY_RE)
            )
        body["conditions"] = checked
        if variants is not None:
            if "serve" not in rule:
                raise DefinitionError(f"{path}[{i}].serve", "is required")
            body["serve"] = validate_serve(rule["serve"], f"{path}[{i}].serve", variants)
        out.append(body)
    return out
