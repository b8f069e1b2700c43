"""Validation of flag and segment definitions into their normalised canonical form.

``validate_flag`` / ``validate_segment`` enforce every shape rule of docs/contract.md §1-§2 and
return a fresh dict (the input is never modified): boolean variants filled in, ``value``
turned into ``values``, rule ids generated, defaults made explicit.  The first problem found
raises :class:`DefinitionError` naming its dotted path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flagstaff.engine.checks import (
    BOOLEAN_VARIANTS,
    FLAG_KINDS,
    FLAG_TYPES,
    MAX_ID_LEN,
    MAX_PREREQUISITES,
    MAX_SEGMENT_KEYS,
    MAX_TAGS,
    MAX_TARGET_VALUES,
    MAX_VARIANTS,
    TAG_RE,
    VARIANT_RE,
    as_key,
    as_list,
    as_object,
    as_str,
    check_json,
    percent,
    string_list,
    variant_ref,
)
from flagstaff.engine.errors import DefinitionError
from flagstaff.engine.rules_validation import validate_rules, validate_serve
from flagstaff.engine.values import is_number

_FLAG_FIELDS = frozenset({
    "key", "name", "description", "type", "kind", "variants", "off_variant", "tags", "owner",
    "salt", "client_side", "environments", "state", "version", "created_at", "updated_at",
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

def _check_variant_value(flag_type: str, value: Any, path: str) -> None:
    if flag_type == "string" and not isinstance(value, str):
        raise DefinitionError(path, "a string flag's variants must be strings")
    if flag_type == "number" and not is_number(value):
        raise DefinitionError(path, "a number flag's variants must be finite numbers")
    if flag_type == "json":
        check_json(value, path)


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
    variants = as_object(raw.get("variants"), "variants")
    if not 1 <= len(variants) <= MAX_VARIANTS:
        raise DefinitionError("variants", f"must have 1..{MAX_VARIANTS} entries")
    out: dict[str, Any] = {}
    for name, value in variants.items():
        as_key(name, f"variants.{name}", "variant key", VARIANT_RE)
        _check_variant_value(flag_type, value, f"variants.{name}")
        out[name] = value
    return out

def _experiment(raw: Any, path: str, variants: Mapping[str, Any]) -> dict[str, Any]:
    """The experiment block (contract §9), defaults made explicit."""
    block = as_object(raw, path, _EXPERIMENT_FIELDS)
    status = block.get("status", "draft")
    if status not in EXPERIMENT_STATUSES:
        raise DefinitionError(f"{path}.status", f"must be one of {', '.join(EXPERIMENT_STATUSES)}")
    allocation = block.get("allocation", 100)
    percent(allocation, f"{path}.allocation")
    # The variations follow the rollout rules exactly (known variants, once each, sum 100).
    if "variations" not in block:
        raise DefinitionError(f"{path}.variations", "is required")
    try:
        rollout = validate_serve({"rollout": {"variations": block["variations"]}}, path, variants)["rollout"]
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
        "salt": as_str(block.get("salt"), f"{path}.salt", MAX_ID_LEN, min_len=1),
    }


_PREREQUISITE_FIELDS = frozenset({"flag", "variant", "variants", "off"})


def _prerequisite(raw: Any, path: str) -> dict[str, Any]:
    """``{flag, variant}``, ``{flag, variants: [...]}`` (any of them) or ``{flag, off: true}``."""
    pre = as_object(raw, path, _PREREQUISITE_FIELDS)
    out: dict[str, Any] = {"flag": as_key(pre.get("flag"), f"{path}.flag", "flag key")}
    off = pre.get("off", False)
    if not isinstance(off, bool):
        raise DefinitionError(f"{path}.off", "must be a boolean")
    given = [name for name in ("variant", "variants") if pre.get(name) is not None] + (["off"] if off else [])
    if len(given) != 1:
        raise DefinitionError(
            path, 'needs exactly one of "variant", "variants" (any of several) or "off": true'
        )
    if off:
        out["off"] = True
    elif "variant" in given:
        out["variant"] = as_key(pre["variant"], f"{path}.variant", "variant key", VARIANT_RE)
    else:
        names = as_list(pre["variants"], f"{path}.variants", MAX_VARIANTS)
        if not names:
            raise DefinitionError(f"{path}.variants", "must not be empty")
        for j, name in enumerate(names):
            as_key(name, f"{path}.variants[{j}]", "variant key", VARIANT_RE)
        if len(set(names)) != len(names):
            raise DefinitionError(f"{path}.variants", "names a variant twice")
        out["variants"] = names
    return out


def validate_environment(
    raw: Any, path: str, variants: Mapping[str, Any], *, share: bool = False
) -> dict[str, Any]:
    """The normalised environment; ``share`` lets canonical rules be returned uncopied."""
    env = as_object(raw, path, _ENV_FIELDS)
    enabled = env.get("enabled", False)
    if not isinstance(enabled, bool):
        raise DefinitionError(f"{path}.enabled", "must be a boolean")
    prerequisites = [
        _prerequisite(pre, f"{path}.prerequisites[{i}]")
        for i, pre in enumerate(as_list(env.get("prerequisites", []), f"{path}.prerequisites", MAX_PREREQUISITES))
    ]
    targets = []
    seen: set[str] = set()
    for i, target in enumerate(as_list(env.get("targets", []), f"{path}.targets", MAX_VARIANTS)):
        tpath = f"{path}.targets[{i}]"
        target = as_object(target, tpath, frozenset({"variant", "values"}))
        name = variant_ref(target.get("variant"), f"{tpath}.variant", variants)
        if name in seen:
            raise DefinitionError(f"{tpath}.variant", f"variant {name!r} has two target lists")
        seen.add(name)
        values = string_list(target.get("values", []), f"{tpath}.values", MAX_TARGET_VALUES)
        targets.append({"variant": name, "values": values})
    fallthrough = env.get("fallthrough")
    out = {
        "enabled": enabled,
        "prerequisites": prerequisites,
        "targets": targets,
        "rules": validate_rules(env.get("rules", []), f"{path}.rules", variants, share),
        "fallthrough": None if fallthrough is None else validate_serve(fallthrough, f"{path}.fallthrough", variants),
    }
    # Left out when absent: canonical definitions without experiments keep their exact shape.
    if env.get("experiment") is not None:
        out["experiment"] = _experiment(env["experiment"], f"{path}.experiment", variants)
    return out


def validate_flag(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised canonical flag definition; raises :class:`DefinitionError`."""
    raw = as_object(definition, "", _FLAG_FIELDS)
    out, variants = _flag_fields(raw)
    environments: dict[str, Any] = {}
    out["environments"] = environments
    for env_key, env in as_object(raw.get("environments", {}), "environments").items():
        as_key(env_key, f"environments.{env_key}", "environment key")
        environments[env_key] = validate_environment(env, f"environments.{env_key}", variants)
    _server_fields(raw, out)
    _flag_state(raw, out)
    return out


def validate_resolved(
    flag_fields: Mapping[str, Any], environment_fields: Mapping[str, Any], environment: str
) -> dict[str, Any]:
    """:func:`validate_flag` of ``{**flag_fields, "environments": {environment: environment_fields}}``
    flattened into one resolved flag (its environment's fields next to the flag's), without
    building that definition: loading a snapshot validates every flag again this way.

    The result may hold parts of the input (rules in canonical form are not copied): it is for
    a caller that reads it once and drops it unchanged.
    """
    raw = as_object(flag_fields, "", _FLAG_FIELDS)
    out, variants = _flag_fields(raw)
    path = f"environments.{environment}"
    as_key(environment, path, "environment key")
    env = validate_environment(environment_fields, path, variants, share=True)
    _server_fields(raw, out)
    _flag_state(raw, out)
    out.update(env)
    return out


def _flag_fields(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the flag's own fields normalised, its variants) for :func:`validate_flag`."""
    key = as_key(raw.get("key"), "key", "flag key")
    flag_type = raw.get("type")
    if flag_type not in FLAG_TYPES:
        raise DefinitionError("type", f"must be one of {', '.join(FLAG_TYPES)}")
    kind = raw.get("kind", "release")
    if kind not in FLAG_KINDS:
        raise DefinitionError("kind", f"must be one of {', '.join(FLAG_KINDS)}")
    variants = _variants(raw, flag_type)
    off = raw.get("off_variant")
    if off is None:  # absent or null: the default, which only a boolean flag has
        if flag_type != "boolean":
            raise DefinitionError("off_variant", "is required for a non-boolean flag")
        off = "false"
    off = variant_ref(off, "off_variant", variants)
    tags = as_list(raw.get("tags", []), "tags", MAX_TAGS)
    for i, tag in enumerate(tags):
        as_key(tag, f"tags[{i}]", "tag", TAG_RE)
    salt = raw.get("salt")
    client_side = raw.get("client_side", False)
    if client_side.__class__ is not bool:
        raise DefinitionError("client_side", "must be a boolean")
    out: dict[str, Any] = {
        "key": key,
        "name": as_str(raw.get("name", key), "name", 200, min_len=1),
        "description": as_str(raw.get("description", ""), "description", 2000),
        "type": flag_type,
        "kind": kind,
        "variants": variants,
        "off_variant": off,
        "tags": tags,
        "owner": as_str(raw.get("owner", ""), "owner", 200),
        "salt": None if salt is None else as_str(salt, "salt", MAX_ID_LEN, min_len=1),
        # Whether client-side SDK keys (browsers) may evaluate this flag at all.
        "client_side": client_side,
    }
    return out, variants


def _server_fields(raw: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Keep the read-only fields the server stamps, so stored definitions round-trip."""
    if "version" in raw:
        if raw["version"].__class__ is not int or raw["version"] < 1:
            raise DefinitionError("version", "must be a positive integer")
        out["version"] = raw["version"]
    for field in ("created_at", "updated_at"):
        if field in raw:
            out[field] = as_str(raw[field], field, 64)


def _flag_state(raw: Mapping[str, Any], out: dict[str, Any]) -> None:
    if "state" in raw:
        if raw["state"] not in ("active", "archived"):
            raise DefinitionError("state", "must be active or archived")
        out["state"] = raw["state"]


def validate_segment(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The normalised canonical segment definition; raises :class:`DefinitionError`."""
    raw = as_object(definition, "", _SEGMENT_FIELDS)
    key = as_key(raw.get("key"), "key", "segment key")
    out: dict[str, Any] = {
        "key": key,
        "name": as_str(raw.get("name", key), "name", 200, min_len=1),
        "description": as_str(raw.get("description", ""), "description", 2000),
        "included": string_list(raw.get("included", []), "included", MAX_SEGMENT_KEYS),
        "excluded": string_list(raw.get("excluded", []), "excluded", MAX_SEGMENT_KEYS),
        "rules": validate_rules(raw.get("rules", []), "rules", None),
    }
    _server_fields(raw, out)
    return out
