"""Validation of flag and segment definitions into their normalised canonical form.

``validate_flag`` / ``validate_segment`` enforce every shape rule of docs/contract.md §1-§2 and
return a fresh dict (the input is never modified): boolean variants filled in, ``value``
turned into ``values``, rule ids generated, defaults made explicit.  The first problem found
raises :class:`DefinitionError` naming its dotted path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from flagstaff.engine.conditions import (
    MAX_ATTRIBUTE_LEN,
    fast_condition,
    fast_conditions,
    validate_condition,
)
from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.values import is_number

KEY_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
VARIANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
FLAG_TYPES = ("boolean", "string", "number", "json")
FLAG_KINDS = ("release", "experiment", "operational", "kill-switch", "permission")
MAX_ID_LEN = 128
MAX_RULES = 1000
MAX_CONDITIONS = 100
MAX_PREREQUISITES = 100
MAX_TARGET_VALUES = 10_000
MAX_SEGMENT_KEYS = 100_000
MAX_VARIANTS = 100
MAX_TAGS = 50
MAX_JSON_DEPTH = 32
BOOLEAN_VARIANTS = {"true": True, "false": False}

_FLAG_FIELDS = frozenset({
    "key", "name", "description", "type", "kind", "variants", "off_variant", "tags", "owner",
    "salt", "environments", "state", "version", "created_at", "updated_at",
})
_ENV_FIELDS = frozenset({"enabled", "prerequisites", "targets", "rules", "fallthrough", "experiment"})
EXPERIMENT_STATUSES = ("draft", "running", "paused", "completed")
METRIC_KINDS = ("conversion", "numeric")
METRIC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_EXPERIMENT_FIELDS = frozenset({
    "status", "allocation", "variations", "control", "primary_metric", "metric_kind", "salt",
})
_SEGMENT_FIELDS = frozenset({
    "key", "name", "description", "included", "excluded", "rules", "version", "created_at",
    "updated_at",
})


def _obj(value: Any, path: str, allowed: frozenset[str] | None = None) -> Mapping[str, Any]:
    if value.__class__ is not dict and not isinstance(value, Mapping):
        raise DefinitionError(path, "must be an object")
    if allowed is not None and not allowed.issuperset(value):
        for field in value:
            if field not in allowed:
                raise DefinitionError(f"{path}.{field}" if path else str(field), "unknown field")
    return value


def _list(value: Any, path: str, max_items: int) -> list[Any]:
    if value.__class__ is not list and not isinstance(value, list | tuple):
        raise DefinitionError(path, "must be a list")
    if len(value) > max_items:
        raise DefinitionError(path, f"at most {max_items} items")
    return list(value)


def _str(value: Any, path: str, max_len: int, *, min_len: int = 0) -> str:
    if not isinstance(value, str):
        raise DefinitionError(path, "must be a string")
    if not min_len <= len(value) <= max_len:
        raise DefinitionError(path, f"must be {min_len}..{max_len} characters")
    return value


def _key(value: Any, path: str, what: str = "key", regex: re.Pattern[str] = KEY_RE) -> str:
    if not isinstance(value, str) or not regex.fullmatch(value):
        raise DefinitionError(path, f"invalid {what} {value!r} (must match ^{regex.pattern}$)")
    return value


def _check_json(value: Any, path: str, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise DefinitionError(path, f"nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise DefinitionError(path, "numbers must be finite")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, Mapping):
        for k, item in value.items():
            if not isinstance(k, str):
                raise DefinitionError(path, "object keys must be strings")
            _check_json(item, f"{path}.{k}", depth + 1)
    else:
        raise DefinitionError(path, f"not a JSON value ({type(value).__name__})")


def _check_variant_value(flag_type: str, value: Any, path: str) -> None:
    if flag_type == "string" and not isinstance(value, str):
        raise DefinitionError(path, "a string flag's variants must be strings")
    if flag_type == "number" and not is_number(value):
        raise DefinitionError(path, "a number flag's variants must be finite numbers")
    if flag_type == "json":
        _check_json(value, path)


def _variants(raw: Mapping[str, Any], flag_type: str) -> dict[str, Any]:
    if flag_type == "boolean":
        given = raw.get("variants")
        if given is not None and (
            not isinstance(given, Mapping)
            or dict(given) != BOOLEAN_VARIANTS
            or any(v.__class__ is not bool for v in given.values())
        ):
            raise DefinitionError("variants", 'a boolean flag has exactly {"true": true, "false": false}')
        return dict(BOOLEAN_VARIANTS)
    variants = _obj(raw.get("variants"), "variants")
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise DefinitionError("variants", f"must have 1..{MAX_VARIANTS} entries")
    out: dict[str, Any] = {}
    for name, value in variants.items():
        _key(name, f"variants.{name}", "variant key", VARIANT_RE)
        _check_variant_value(flag_type, value, f"variants.{name}")
        out[name] = value
    return out


def _variant_ref(value: Any, path: str, variants: Mapping[str, Any]) -> str:
    if not isinstance(value, str) or value not in variants:
        raise DefinitionError(path, f"unknown variant {value!r}; one of {', '.join(variants)}")
    return value


def _serve(raw: Any, path: str, variants: Mapping[str, Any]) -> dict[str, Any]:
    if raw.__class__ is dict and len(raw) == 1:
        variant = raw.get("variant")
        if variant.__class__ is str and variant in variants:  # the common shape, checked at once
            return {"variant": variant}
    serve = _obj(raw, path)
    if ("variant" in serve) == ("rollout" in serve) or len(serve) != 1:
        raise DefinitionError(path, 'must be exactly one of {"variant": ...} or {"rollout": ...}')
    if "variant" in serve:
        return {"variant": _variant_ref(serve["variant"], f"{path}.variant", variants)}
    rpath = f"{path}.rollout"
    roll = _obj(serve["rollout"], rpath, frozenset({"variations", "bucket_by", "salt"}))
    variations = _list(roll.get("variations"), f"{rpath}.variations", MAX_VARIANTS)
    if not variations:
        raise DefinitionError(f"{rpath}.variations", "must not be empty")
    seen: set[str] = set()
    total = 0
    out_vars = []
    for i, item in enumerate(variations):
        vpath = f"{rpath}.variations[{i}]"
        item = _obj(item, vpath, frozenset({"variant", "weight"}))
        name = _variant_ref(item.get("variant"), f"{vpath}.variant", variants)
        if name in seen:
            raise DefinitionError(f"{vpath}.variant", f"variant {name!r} appears twice")
        seen.add(name)
        weight: Any = item.get("weight")
        if not is_number(weight) or not 0 <= weight <= 100:
            raise DefinitionError(f"{vpath}.weight", "must be a number from 0 to 100")
        thousandths = round(weight * 1000)
        if abs(weight * 1000 - thousandths) > 1e-6:
            raise DefinitionError(f"{vpath}.weight", "at most 3 decimals")
        total += thousandths
        out_vars.append({"variant": name, "weight": weight})
    if total != 100_000:
        raise DefinitionError(f"{rpath}.variations", f"weights sum to {total / 1000:g}, not 100")
    out: dict[str, Any] = {"variations": out_vars}
    if roll.get("bucket_by") is not None:
        out["bucket_by"] = _str(roll["bucket_by"], f"{rpath}.bucket_by", MAX_ATTRIBUTE_LEN, min_len=1)
    if roll.get("salt") is not None:
        out["salt"] = _str(roll["salt"], f"{rpath}.salt", MAX_ID_LEN, min_len=1)
    return {"rollout": out}


_FLAG_RULE_FIELDS = frozenset({"id", "description", "conditions", "serve"})
_SEGMENT_RULE_FIELDS = frozenset({"id", "description", "conditions"})


def _fast_rule(
    rule: Any, variants: Mapping[str, Any] | None, ids: set[str], share: bool
) -> dict[str, Any] | None:
    """A rule already in canonical form, checked in one pass; ``None`` = use the full path.

    The full path below gives the same result for these and is the one that reports errors.
    ``share``: the canonical input itself is returned instead of a copy.
    """
    if rule.__class__ is not dict or "description" in rule:
        return None
    rule_id = rule.get("id")
    conditions = rule.get("conditions")
    if (
        rule_id.__class__ is not str
        or not 0 < len(rule_id) <= MAX_ID_LEN
        or rule_id in ids
        or conditions.__class__ is not list
        or len(conditions) > MAX_CONDITIONS
    ):
        return None
    if variants is None:
        if len(rule) != 2:
            return None
        checked = fast_conditions(conditions, share=share)
        if checked is None:
            return None
        return rule if share else {"id": rule_id, "conditions": checked}
    serve = rule.get("serve")
    if len(rule) != 3 or serve.__class__ is not dict or len(serve) != 1:
        return None
    variant = serve.get("variant")
    if variant.__class__ is not str or variant not in variants:
        return None
    checked = fast_conditions(conditions, share=share)
    if checked is None:
        return None
    return rule if share else {"id": rule_id, "conditions": checked, "serve": {"variant": variant}}


def _rules(
    raw: Any, path: str, variants: Mapping[str, Any] | None, share: bool = False
) -> list[dict[str, Any]]:
    """Flag rules (``variants`` given, each needs ``serve``) or segment rules (no serve).

    Snapshots re-validate every rule on load, so paths are only formatted for an error.
    """
    rules = _list(raw, path, MAX_RULES)
    allowed = _FLAG_RULE_FIELDS if variants is not None else _SEGMENT_RULE_FIELDS
    explicit: set[Any] | None = None
    out = []
    ids: set[str] = set()
    for i, rule in enumerate(rules):
        fast = _fast_rule(rule, variants, ids, share)
        if fast is not None:
            ids.add(fast["id"])
            out.append(fast)
            continue
        if rule.__class__ is not dict or not allowed.issuperset(rule):
            rule = _obj(rule, f"{path}[{i}]", allowed)
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
            _str(rule_id, f"{path}[{i}].id", MAX_ID_LEN, min_len=1)
        if rule_id in ids:
            raise DefinitionError(f"{path}[{i}].id", f"duplicate rule id {rule_id!r}")
        ids.add(rule_id)
        body: dict[str, Any] = {"id": rule_id}
        if rule.get("description") is not None:
            body["description"] = _str(rule["description"], f"{path}[{i}].description", 2000)
        conditions = rule.get("conditions", [])
        if conditions.__class__ is not list or len(conditions) > MAX_CONDITIONS:
            conditions = _list(conditions, f"{path}[{i}].conditions", MAX_CONDITIONS)
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
            body["serve"] = _serve(rule["serve"], f"{path}[{i}].serve", variants)
        out.append(body)
    return out


def _string_list(raw: Any, path: str, max_items: int) -> list[str]:
    items = _list(raw, path, max_items)
    for i, item in enumerate(items):
        _str(item, f"{path}[{i}]", 1024)
    return items


def _percent(value: Any, path: str) -> int:
    """A 0..100 percent with at most 3 decimals, in thousandths."""
    if not is_number(value) or not 0 <= value <= 100:
        raise DefinitionError(path, "must be a number from 0 to 100")
    thousandths = round(value * 1000)
    if abs(value * 1000 - thousandths) > 1e-6:
        raise DefinitionError(path, "at most 3 decimals")
    return int(thousandths)


def _experiment(raw: Any, path: str, variants: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment block (contract §9), defaults made explicit."""
    block = _obj(raw, path, _EXPERIMENT_FIELDS)
    status = block.get("status", "draft")
    if status not in EXPERIMENT_STATUSES:
        raise DefinitionError(f"{path}.status", f"must be one of {', '.join(EXPERIMENT_STATUSES)}")
    allocation = block.get("allocation", 100)
    _percent(allocation, f"{path}.allocation")
    # The variations follow the rollout rules exactly (known variants, once each, sum 100).
    if "variations" not in block:
        raise DefinitionError(f"{path}.variations", "is required")
    try:
        rollout = _serve({"rollout": {"variations": block["variations"]}}, path, variants)["rollout"]
    except DefinitionError as exc:
        raise DefinitionError(exc.path.replace(f"{path}.rollout", path, 1), exc.message) from None
    names = [v["variant"] for v in rollout["variations"]]
    control = block.get("control")
    if not isinstance(control, str) or control not in names:
        raise DefinitionError(f"{path}.control", f"must be one of the variations ({', '.join(names)})")
    if len(names) < 2:
        raise DefinitionError(f"{path}.variations", "an experiment needs at least two variations")
    metric = block.get("primary_metric")
    if not isinstance(metric, str) or not METRIC_RE.fullmatch(metric):
        raise DefinitionError(
            f"{path}.primary_metric", f"invalid metric key {metric!r} (must match ^{METRIC_RE.pattern}$)"
        )
    metric_kind = block.get("metric_kind", "conversion")
    if metric_kind not in METRIC_KINDS:
        raise DefinitionError(f"{path}.metric_kind", f"must be one of {', '.join(METRIC_KINDS)}")
    return {
        "status": status,
        "allocation": allocation,
        "variations": rollout["variations"],
        "control": control,
        "primary_metric": metric,
        "metric_kind": metric_kind,
        "salt": _str(block.get("salt"), f"{path}.salt", MAX_ID_LEN, min_len=1),
    }


def validate_environment(
    raw: Any, path: str, variants: Mapping[str, Any], *, share: bool = False
) -> dict[str, Any]:
    """The normalised environment; ``share`` lets canonical rules be returned uncopied."""
    env = _obj(raw, path, _ENV_FIELDS)
    enabled = env.get("enabled", False)
    if not isinstance(enabled, bool):
        raise DefinitionError(f"{path}.enabled", "must be a boolean")
    prerequisites = []
    for i, pre in enumerate(_list(env.get("prerequisites", []), f"{path}.prerequisites", MAX_PREREQUISITES)):
        ppath = f"{path}.prerequisites[{i}]"
        pre = _obj(pre, ppath, frozenset({"flag", "variant"}))
        prerequisites.append({
            "flag": _key(pre.get("flag"), f"{ppath}.flag", "flag key"),
            "variant": _key(pre.get("variant"), f"{ppath}.variant", "variant key", VARIANT_RE),
        })
    targets = []
    seen: set[str] = set()
    for i, target in enumerate(_list(env.get("targets", []), f"{path}.targets", MAX_VARIANTS)):
        tpath = f"{path}.targets[{i}]"
        target = _obj(target, tpath, frozenset({"variant", "values"}))
        name = _variant_ref(target.get("variant"), f"{tpath}.variant", variants)
        if name in seen:
            raise DefinitionError(f"{tpath}.variant", f"variant {name!r} has two target lists")
        seen.add(name)
        values = _string_list(target.get("values", []), f"{tpath}.values", MAX_TARGET_VALUES)
        targets.append({"variant": name, "values": values})
    fallthrough = env.get("fallthrough")
    out = {
        "enabled": enabled,
        "prerequisites": prerequisites,
        "targets": targets,
        "rules": _rules(env.get("rules", []), f"{path}.rules", variants, share),
        "fallthrough": None if fallthrough is None else _serve(fallthrough, f"{path}.fallthrough", variants),
    }
    # Left out when absent: canonical definitions without experiments keep their exact shape.
    if env.get("experiment") is not None:
        out["experiment"] = _experiment(env["experiment"], f"{path}.experiment", variants)
    return out


def validate_flag(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised canonical flag definition; raises :class:`DefinitionError`."""
    return validate_flag_shared(definition, share=False)


def validate_flag_shared(definition: Mapping[str, Any], *, share: bool) -> dict[str, Any]:
    """:func:`validate_flag`; with ``share`` the result may hold parts of ``definition`` itself.

    For a caller that reads the result once and drops it without changing it (loading a
    snapshot validates every flag again): rules already in canonical form are not copied.
    """
    raw = _obj(definition, "", _FLAG_FIELDS)
    key = _key(raw.get("key"), "key", "flag key")
    flag_type = raw.get("type")
    if flag_type not in FLAG_TYPES:
        raise DefinitionError("type", f"must be one of {', '.join(FLAG_TYPES)}")
    kind = raw.get("kind", "release")
    if kind not in FLAG_KINDS:
        raise DefinitionError("kind", f"must be one of {', '.join(FLAG_KINDS)}")
    variants = _variants(raw, flag_type)
    off = raw.get("off_variant", "false" if flag_type == "boolean" else None)
    if off is None:
        raise DefinitionError("off_variant", "is required for a non-boolean flag")
    off = _variant_ref(off, "off_variant", variants)
    tags = _list(raw.get("tags", []), "tags", MAX_TAGS)
    for i, tag in enumerate(tags):
        _key(tag, f"tags[{i}]", "tag", TAG_RE)
    salt = raw.get("salt")
    out: dict[str, Any] = {
        "key": key,
        "name": _str(raw.get("name", key), "name", 200, min_len=1),
        "description": _str(raw.get("description", ""), "description", 2000),
        "type": flag_type,
        "kind": kind,
        "variants": variants,
        "off_variant": off,
        "tags": tags,
        "owner": _str(raw.get("owner", ""), "owner", 200),
        "salt": None if salt is None else _str(salt, "salt", MAX_ID_LEN, min_len=1),
        "environments": {},
    }
    for env_key, env in _obj(raw.get("environments", {}), "environments").items():
        _key(env_key, f"environments.{env_key}", "environment key")
        out["environments"][env_key] = validate_environment(
            env, f"environments.{env_key}", variants, share=share
        )
    _server_fields(raw, out)
    if "state" in raw and raw["state"] not in ("active", "archived"):
        raise DefinitionError("state", "must be active or archived")
    if "state" in raw:
        out["state"] = raw["state"]
    return out


def _server_fields(raw: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Keep the read-only fields the server stamps, so stored definitions round-trip."""
    if "version" in raw:
        if raw["version"].__class__ is not int or raw["version"] < 1:
            raise DefinitionError("version", "must be a positive integer")
        out["version"] = raw["version"]
    for field in ("created_at", "updated_at"):
        if field in raw:
            out[field] = _str(raw[field], field, 64)


def validate_segment(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised canonical segment definition; raises :class:`DefinitionError`."""
    raw = _obj(definition, "", _SEGMENT_FIELDS)
    key = _key(raw.get("key"), "key", "segment key")
    out: dict[str, Any] = {
        "key": key,
        "name": _str(raw.get("name", key), "name", 200, min_len=1),
        "description": _str(raw.get("description", ""), "description", 2000),
        "included": _string_list(raw.get("included", []), "included", MAX_SEGMENT_KEYS),
        "excluded": _string_list(raw.get("excluded", []), "excluded", MAX_SEGMENT_KEYS),
        "rules": _rules(raw.get("rules", []), "rules", None),
    }
    _server_fields(raw, out)
    return out
