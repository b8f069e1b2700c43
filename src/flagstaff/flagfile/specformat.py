"""Conversion of the spec's flag format to the canonical definition.

The spec's format (``defaultValue``, a global ``enabled``, ``rules[].value``, ``fallthrough:
{percentage, value}``, a ``variants`` list with weights, ``killSwitch`` and per-environment
``{enabled, value}`` overrides) describes one flag for every environment at once.  It becomes a
canonical definition whose environments all get the same rules:

- variants are derived from the distinct values (``true``/``false`` for booleans, otherwise the
  value's string form, e.g. ``"15"`` or ``"anthropic"``); the default value is ``off_variant``;
- a rule or fallthrough with ``percentage: P`` serves a rollout of its value P % and the default
  value 100-P % (the spec falls through to the next rule instead; a rollout keeps a user's
  answer stable, which is why canonical flags have no "skip this rule" step);
- a ``variants`` list with weights becomes the fallthrough rollout, as in the spec, where it is
  consulted before the fallthrough;
- ``killSwitch: true`` disables every environment; an environment override with ``value``
  serves that value to everyone in that environment.

Conversion errors name the source path; :class:`PathMap` sends the engine's canonical error
paths back to the spec-format source so they are reported on the right line.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from flagstaff.flagfile.yamltree import Path, split_path

SPEC_ONLY_KEYS = frozenset({"defaultValue", "enabled", "rules", "fallthrough", "killSwitch"})
DEFAULT_ENVIRONMENTS = ("development", "staging", "production")

_VARIANT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PASSTHROUGH = ("key", "name", "description", "type", "kind", "tags", "owner", "salt")


class SpecFormatError(Exception):
    """A spec-format flag cannot be converted; ``path`` is relative to the flag."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def is_spec_format(flag: Mapping[str, Any]) -> bool:
    """Canonical flags never have these top-level keys, nor a list of variants."""
    return bool(SPEC_ONLY_KEYS & flag.keys()) or isinstance(flag.get("variants"), list)


class PathMap:
    """Canonical dotted-path prefixes -> the source path they were converted from."""

    def __init__(self) -> None:
        self._prefixes: dict[str, Path] = {}

    def add(self, canonical: str, source: Path) -> None:
        self._prefixes.setdefault(canonical, source)

    def resolve(self, dotted: str, source_flag: Any) -> Path:
        best = ""
        for prefix in self._prefixes:
            fits = dotted == prefix or dotted.startswith((f"{prefix}.", f"{prefix}["))
            if fits and len(prefix) > len(best):
                best = prefix
        if not best:
            return split_path(dotted, source_flag)
        base = self._prefixes[best]
        node = source_flag
        for part in base:
            node = node[part]
        return (*base, *split_path(dotted[len(best) :].removeprefix("."), node))


class _Variants:
    """Assigns a stable variant key to each distinct value, in order of appearance."""

    def __init__(self, flag_type: Any, paths: PathMap) -> None:
        self.boolean = flag_type == "boolean"
        self.by_identity: dict[str, str] = {}
        self.variants: dict[str, Any] = {}
        self.paths = paths

    def key_for(self, value: Any, source: Path, *, preferred: str | None = None) -> str:
        if self.boolean:
            if not isinstance(value, bool):
                raise SpecFormatError(
                    source, f"a boolean flag's value must be true or false, not {value!r}"
                )
            key = "true" if value else "false"
            self.paths.add(f"variants.{key}", source)
            return key
        identity = json.dumps([type(value).__name__, value], sort_keys=True, default=str)
        if identity in self.by_identity:
            return self.by_identity[identity]
        key = self._new_key(value, preferred)
        self.by_identity[identity] = key
        self.variants[key] = value
        self.paths.add(f"variants.{key}", source)
        return key

    def _new_key(self, value: Any, preferred: str | None) -> str:
        candidates = []
        if preferred is not None:
            candidates.append(str(preferred))
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            text = str(value)
            candidates.append(text)
            candidates.append(re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:64])
        for candidate in candidates:
            if _VARIANT_KEY.match(candidate) and candidate not in self.variants:
                return candidate
        n = len(self.variants) + 1
        while f"variant-{n}" in self.variants:
            n += 1
        return f"variant-{n}"

    def result(self) -> dict[str, Any]:
        return {"true": True, "false": False} if self.boolean else dict(self.variants)


def convert(flag: Mapping[str, Any], environments: list[str]) -> tuple[dict[str, Any], PathMap]:
    """Convert one spec-format flag; ``environments`` are the file's (or the default) ones."""
    paths = PathMap()
    variants = _Variants(flag.get("type"), paths)
    out: dict[str, Any] = {k: flag[k] for k in _PASSTHROUGH if k in flag}

    if "defaultValue" not in flag:
        raise SpecFormatError(
            (), "defaultValue is required (the value served when the flag is off)"
        )
    default = variants.key_for(flag["defaultValue"], ("defaultValue",))
    paths.add("off_variant", ("defaultValue",))

    rules = [_rule(rule, i, variants, default) for i, rule in enumerate(_list(flag, "rules"))]
    fallthrough = _fallthrough(flag, variants, default, paths)

    enabled = _bool(flag, "enabled", default=False, path=("enabled",))
    if _bool(flag, "killSwitch", default=False, path=("killSwitch",)):
        enabled = False
    overrides = flag.get("environments") or {}
    if not isinstance(overrides, Mapping):
        raise SpecFormatError(
            ("environments",), "environments must map environment keys to overrides"
        )

    env_configs: dict[str, Any] = {}
    for env in [*environments, *(e for e in overrides if e not in environments)]:
        prefix = f"environments.{env}"
        # Copies, so that no two environments share (and a YAML dump never aliases) a value.
        config: dict[str, Any] = copy.deepcopy(
            {"enabled": enabled, "rules": rules, "fallthrough": fallthrough}
        )
        for i in range(len(rules)):
            paths.add(f"{prefix}.rules[{i}]", ("rules", i))
        paths.add(f"{prefix}.enabled", ("enabled",))
        paths.add(
            f"{prefix}.fallthrough",
            ("variants",) if isinstance(flag.get("variants"), list) else ("fallthrough",),
        )
        if env in overrides:
            config = _override(overrides[env], env, config, variants, paths)
        env_configs[env] = config

    out["variants"] = variants.result()
    out["off_variant"] = default
    out["environments"] = env_configs
    return out, paths


def _override(
    override: Any, env: str, config: dict[str, Any], variants: _Variants, paths: PathMap
) -> dict[str, Any]:
    source: Path = ("environments", env)
    if not isinstance(override, Mapping):
        raise SpecFormatError(
            source, "an environment override must be a mapping with enabled and optional value"
        )
    paths.add(f"environments.{env}", source)
    paths.add(f"environments.{env}.enabled", (*source, "enabled"))
    config = {
        **config,
        "enabled": config["enabled"]
        and _bool(override, "enabled", default=True, path=(*source, "enabled")),
    }
    if "value" in override:
        # The spec serves an override value to everyone, before any rule.
        key = variants.key_for(override["value"], (*source, "value"))
        paths.add(f"environments.{env}.fallthrough", (*source, "value"))
        config = {**config, "rules": [], "fallthrough": {"variant": key}}
    return config


def _rule(rule: Any, i: int, variants: _Variants, default: str) -> dict[str, Any]:
    source: Path = ("rules", i)
    if not isinstance(rule, Mapping):
        raise SpecFormatError(source, "a rule must be a mapping with conditions and value")
    if "value" not in rule:
        raise SpecFormatError(source, "a rule needs a value (the value served when it matches)")
    out: dict[str, Any] = {}
    if "id" in rule:
        out["id"] = rule["id"]
    if "description" in rule:
        out["description"] = rule["description"]
    out["conditions"] = rule.get("conditions", [])
    key = variants.key_for(rule["value"], (*source, "value"))
    out["serve"] = _serve(key, rule.get("percentage"), default, (*source, "percentage"))
    return out


def _fallthrough(
    flag: Mapping[str, Any], variants: _Variants, default: str, paths: PathMap
) -> dict[str, Any] | None:
    listed = flag.get("variants")
    if isinstance(listed, list) and listed:
        variations = []
        for i, item in enumerate(listed):
            if not isinstance(item, Mapping) or "value" not in item or "weight" not in item:
                raise SpecFormatError(("variants", i), "a variant needs a value and a weight")
            key = variants.key_for(
                item["value"], ("variants", i, "value"), preferred=item.get("key")
            )
            variations.append({"variant": key, "weight": item["weight"]})
        return {"rollout": {"variations": variations}}
    fallthrough = flag.get("fallthrough")
    if fallthrough is None:
        return None
    if not isinstance(fallthrough, Mapping) or "value" not in fallthrough:
        raise SpecFormatError(
            ("fallthrough",), "fallthrough must be a mapping with a value and optional percentage"
        )
    key = variants.key_for(fallthrough["value"], ("fallthrough", "value"))
    return _serve(key, fallthrough.get("percentage"), default, ("fallthrough", "percentage"))


def _serve(key: str, percentage: Any, default: str, source: Path) -> dict[str, Any]:
    if percentage is None or key == default:
        return {"variant": key}
    if (
        isinstance(percentage, bool)
        or not isinstance(percentage, int | float)
        or not 0 <= percentage <= 100
    ):
        raise SpecFormatError(
            source, f"percentage must be a number from 0 to 100, not {percentage!r}"
        )
    if percentage == 100:
        return {"variant": key}
    rest = round(100 - percentage, 3)
    return {
        "rollout": {
            "variations": [
                {"variant": key, "weight": percentage},
                {"variant": default, "weight": rest},
            ]
        }
    }


def _list(flag: Mapping[str, Any], name: str) -> list[Any]:
    value = flag.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SpecFormatError((name,), f"{name} must be a list")
    return value


def _bool(data: Mapping[str, Any], name: str, *, default: bool, path: Path) -> bool:
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise SpecFormatError(path, f"{name} must be true or false, not {value!r}")
    return value
