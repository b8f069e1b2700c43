"""Translation between the spec's flag shapes and the canonical definition (one module for
flag files and for ``POST``/``PUT /flags``).

The spec describes one flag for every environment at once, in 003's camelCase (``defaultValue``,
``killSwitch``) or 001's snake_case (``default_value``, ``kill_switch``); field names are
otherwise the same, and one body may use either spelling of each field (not both).  It becomes
a canonical definition whose environments all get the same rules (docs/contract.md §1a says
field by field):

- variants are derived from the distinct values (``true``/``false`` for booleans, otherwise the
  value's string form, e.g. ``"15"`` or ``"anthropic"``); the default value is ``off_variant``;
- ``enabled`` (default true: the spec's flag is on unless killed) turns every environment on;
- a rule or fallthrough with ``percentage: P`` serves a rollout of its value P % and the default
  value 100-P % (the spec falls through to the next rule instead; canonical rules have no "skip
  this rule" step); a boolean fallthrough with a percentage and no value rolls out the opposite
  of the default;
- a ``variants`` list with weights becomes the fallthrough rollout (the spec consults it before
  the fallthrough, which it therefore never reaches); weights below 100 leave the rest to the
  first variant, as the spec's selection does;
- rollouts bucket by ``user.id``, else ``tenant.id`` (the spec's bucket key), else the
  targeting key;
- ``killSwitch: true`` disables every environment; an environment override ``{enabled: false}``
  disables that environment, ``{enabled: true, value: V}`` serves V to everyone there (even when
  the flag is otherwise off, as in the spec);
- 001's operator ``in_list`` is ``in``.

Conversion errors name the source path in the client's spelling; :class:`PathMap` sends the
engine's canonical error paths back to the source.  Reads add ``default_value`` (the off
variant's value), a read-only field: a canonical body may carry it back only unchanged.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any

from flagstaff.flagfile.yamltree import Path, join_path, split_path

DEFAULT_ENVIRONMENTS = ("development", "staging", "production")
# The spec's fields that have two spellings, by their snake_case name.
_SPELLINGS = {
    "default_value": ("defaultValue", "default_value"),
    "kill_switch": ("killSwitch", "kill_switch"),
}
_SPEC_ONLY = frozenset({"defaultValue", "default_value", "killSwitch", "kill_switch", "enabled",
                        "rules", "fallthrough"})
_PASSTHROUGH = ("key", "name", "description", "type", "kind", "tags", "owner", "salt", "client_side")
# Server-managed or descriptive fields of the spec that carry no meaning on input.
_IGNORED = frozenset({"createdAt", "created_at", "updatedAt", "updated_at", "state", "version"})
_FLAG_FIELDS = frozenset({*_PASSTHROUGH, *_IGNORED, *(s for pair in _SPELLINGS.values() for s in pair),
                          "enabled", "rules", "fallthrough", "variants", "environments"})
_RULE_FIELDS = frozenset({"id", "description", "conditions", "percentage", "value"})
_OPERATOR_ALIASES = {"in_list": "in"}
SPEC_BUCKET_BY = ["user.id", "tenant.id", "key"]
_VARIANT_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BOOLEAN_VARIANTS = {"true": True, "false": False}


class SpecFormatError(Exception):
    """A spec-format flag cannot be converted; ``path`` is relative to the flag, as sent."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def is_spec_format(flag: Mapping[str, Any]) -> bool:
    """A variants *list*, or a spec-only field without canonical ``variants``/``off_variant``.

    A canonical definition read back from the server carries ``default_value`` next to its
    ``variants`` object and ``off_variant``: that stays canonical.
    """
    if isinstance(flag.get("variants"), list):
        return True
    canonical = "off_variant" in flag or isinstance(flag.get("variants"), Mapping)
    return bool(_SPEC_ONLY & flag.keys()) and not canonical


def default_value(definition: Mapping[str, Any]) -> Any:
    """The value a canonical definition serves when off (the read-only ``default_value``)."""
    variants = definition.get("variants")
    if variants is None and definition.get("type", "boolean") == "boolean":
        variants = BOOLEAN_VARIANTS
    off = definition.get("off_variant")
    if off is None and definition.get("type", "boolean") == "boolean":
        off = "false"
    return variants.get(off) if isinstance(variants, Mapping) else None


def without_default_value(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A canonical body without its read-only ``default_value``, which must be unchanged."""
    out = dict(definition)
    if "default_value" in out:
        given = out.pop("default_value")
        current = default_value(out)
        if not _same_json(given, current):
            raise SpecFormatError(
                ("default_value",),
                f"is read-only here: it is the off variant's value ({json.dumps(current)}); "
                "change off_variant or that variant's value instead",
            )
    return out


def _same_json(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and type(a) is type(b)


class PathMap:
    """Canonical dotted-path prefixes -> the source path they were converted from."""

    def __init__(self) -> None:
        self._prefixes: dict[str, Path] = {}

    def add(self, canonical: str, source: Path) -> None:
        self._prefixes.setdefault(canonical, source)

    def _best(self, dotted: str) -> str:
        best = ""
        for prefix in self._prefixes:
            fits = dotted == prefix or dotted.startswith((f"{prefix}.", f"{prefix}["))
            if fits and len(prefix) > len(best):
                best = prefix
        return best

    def resolve(self, dotted: str, source_flag: Any) -> Path:
        """The deepest existing source path (for a file's line number)."""
        best = self._best(dotted)
        if not best:
            return split_path(dotted, source_flag)
        base = self._prefixes[best]
        node = source_flag
        for part in base:
            node = node[part]
        return (*base, *split_path(dotted[len(best) :].removeprefix("."), node))

    def field(self, dotted: str, source_flag: Any) -> str:
        """The field as the client named it: the source path as far as it exists, then the
        rest as given (a condition's canonical ``values[i]`` is its ``value`` if so sent)."""
        best = self._best(dotted)
        path: list[str | int] = list(self._prefixes[best]) if best else []
        node = source_flag
        for part in path:
            node = node[part]
        tokens: list[str | int] = [
            int(index) if index else name
            for index, name in _TOKEN.findall(dotted[len(best) :])
        ]
        i = 0
        while i < len(tokens):
            token = tokens[i]
            in_list = isinstance(token, int) and isinstance(node, list) and token < len(node)
            if in_list or (isinstance(token, str) and isinstance(node, Mapping) and token in node):
                node = node[token]
            elif token == "values" and isinstance(node, Mapping) and "value" in node:
                token, node = "value", node["value"]
                if not isinstance(node, list) and i + 1 < len(tokens) and isinstance(tokens[i + 1], int):
                    i += 1  # a single value was sent: values[0] is the value itself
            else:
                break
            path.append(token)
            i += 1
        return join_path([*path, *tokens[i:]])


_TOKEN = re.compile(r"\[([0-9]+)\]|\.?([^.\[]+)")


def _spelled(flag: Mapping[str, Any], name: str) -> tuple[str, Any] | None:
    """(the spelling used, the value) of a two-spelling field, or None if absent."""
    present = [s for s in _SPELLINGS[name] if s in flag]
    if len(present) > 1:
        raise SpecFormatError((present[1],), f"give either {present[0]} or {present[1]}, not both")
    return (present[0], flag[present[0]]) if present else None


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
        return dict(BOOLEAN_VARIANTS) if self.boolean else dict(self.variants)


def convert(flag: Mapping[str, Any], environments: list[str]) -> tuple[dict[str, Any], PathMap]:
    """Convert one spec-format flag; ``environments`` are the file's (or server's) ones."""
    for field in flag:
        if field not in _FLAG_FIELDS:
            raise SpecFormatError((field,), "unknown field of a spec-format flag")
    paths = PathMap()
    variants = _Variants(flag.get("type"), paths)
    out: dict[str, Any] = {k: flag[k] for k in _PASSTHROUGH if k in flag}

    default_field = _spelled(flag, "default_value")
    if default_field is None:
        raise SpecFormatError(
            (), "defaultValue (or default_value) is required: the value served when the flag is off"
        )
    default = variants.key_for(default_field[1], (default_field[0],))
    paths.add("off_variant", (default_field[0],))

    rules = [_rule(rule, i, variants, default) for i, rule in enumerate(_list(flag, "rules"))]
    fallthrough = _fallthrough(flag, variants, default)

    enabled = _bool(flag, "enabled", default=True, path=("enabled",))
    kill = _spelled(flag, "kill_switch")
    killed = kill is not None and _bool(flag, kill[0], default=False, path=(kill[0],))
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
            {"enabled": enabled and not killed, "rules": rules, "fallthrough": fallthrough}
        )
        for i, rule in enumerate(rules):
            if "rollout" in rule["serve"]:
                paths.add(f"{prefix}.rules[{i}].serve", ("rules", i, "percentage"))
            paths.add(f"{prefix}.rules[{i}]", ("rules", i))
        paths.add(f"{prefix}.enabled", (kill[0],) if killed and kill else ("enabled",))
        paths.add(
            f"{prefix}.fallthrough",
            ("variants",) if isinstance(flag.get("variants"), list) else ("fallthrough",),
        )
        if env in overrides:
            config = _override(overrides[env], env, config, variants, paths, killed=killed)
        env_configs[env] = config

    out["variants"] = variants.result()
    out["off_variant"] = default
    out["environments"] = env_configs
    return out, paths


def _override(
    override: Any, env: str, config: dict[str, Any], variants: _Variants, paths: PathMap,
    *, killed: bool,
) -> dict[str, Any]:
    source: Path = ("environments", env)
    if not isinstance(override, Mapping):
        raise SpecFormatError(
            source, "an environment override must be a mapping with enabled and optional value"
        )
    for field in override:
        if field not in ("enabled", "value"):
            raise SpecFormatError((*source, field), "unknown field of an environment override")
    paths.add(f"environments.{env}", source)
    paths.add(f"environments.{env}.enabled", (*source, "enabled"))
    if not _bool(override, "enabled", default=True, path=(*source, "enabled")) or killed:
        return {**config, "enabled": False}
    if "value" not in override:
        return config
    # The spec serves an override value to everyone there, before rules and the global switch.
    key = variants.key_for(override["value"], (*source, "value"))
    paths.add(f"environments.{env}.fallthrough", (*source, "value"))
    return {**config, "enabled": True, "rules": [], "fallthrough": {"variant": key}}


def _rule(rule: Any, i: int, variants: _Variants, default: str) -> dict[str, Any]:
    source: Path = ("rules", i)
    if not isinstance(rule, Mapping):
        raise SpecFormatError(source, "a rule must be a mapping with conditions and value")
    for field in rule:
        if field not in _RULE_FIELDS:
            raise SpecFormatError((*source, field), "unknown field of a spec-format rule")
    if "value" not in rule:
        raise SpecFormatError((*source, "value"), "is required (the value served when the rule matches)")
    out: dict[str, Any] = {}
    if "id" in rule:
        out["id"] = rule["id"]
    if "description" in rule:
        out["description"] = rule["description"]
    conditions = rule.get("conditions", [])
    if isinstance(conditions, list):
        conditions = [_condition(c) for c in conditions]
    out["conditions"] = conditions
    key = variants.key_for(rule["value"], (*source, "value"))
    out["serve"] = _serve(key, rule.get("percentage"), default, (*source, "percentage"))
    return out


def _condition(condition: Any) -> Any:
    if isinstance(condition, Mapping) and condition.get("operator") in _OPERATOR_ALIASES:
        return {**condition, "operator": _OPERATOR_ALIASES[condition["operator"]]}
    return condition


def _weights(listed: list[Any]) -> list[float]:
    """The share of each listed variant as the spec's cumulative selection gives it: weights
    past 100 in total are never reached, and what they leave below 100 goes to the first.
    Shares are kept to 0.001 % (the canonical rollout's resolution)."""
    shares: list[int] = []
    total = 0
    for i, item in enumerate(listed):
        weight = item["weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 100:
            raise SpecFormatError(("variants", i, "weight"), f"must be a number from 0 to 100, not {weight!r}")
        share = max(0, min(round(weight * 1000), 100_000 - total))
        shares.append(share)
        total += share
    shares[0] += 100_000 - total
    return [s / 1000 for s in shares]


def _fallthrough(flag: Mapping[str, Any], variants: _Variants, default: str) -> dict[str, Any] | None:
    listed = flag.get("variants")
    if isinstance(listed, list) and listed:
        keys = []
        for i, item in enumerate(listed):
            if not isinstance(item, Mapping) or "value" not in item or "weight" not in item:
                raise SpecFormatError(("variants", i), "a variant needs a value and a weight")
            keys.append(variants.key_for(item["value"], ("variants", i, "value"), preferred=item.get("key")))
        shares: dict[str, float] = {}
        for key, share in zip(keys, _weights(listed), strict=True):
            shares[key] = shares.get(key, 0) + share  # two list entries with the same value
        return {"rollout": {"variations": [{"variant": k, "weight": w} for k, w in shares.items()],
                            "bucket_by": list(SPEC_BUCKET_BY)}}
    fallthrough = flag.get("fallthrough")
    if fallthrough is None:
        return None
    if not isinstance(fallthrough, Mapping):
        raise SpecFormatError(("fallthrough",), "fallthrough must be a mapping with a value and optional percentage")
    for field in fallthrough:
        if field not in ("value", "percentage"):
            raise SpecFormatError(("fallthrough", field), "unknown field of a fallthrough")
    if "value" in fallthrough:
        key = variants.key_for(fallthrough["value"], ("fallthrough", "value"))
    elif variants.boolean and "percentage" in fallthrough:
        key = "false" if default == "true" else "true"  # "roll out to P %": the opposite of the default
    else:
        raise SpecFormatError(("fallthrough", "value"), "is required (the value served to the percentage)")
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
    share = round(percentage * 1000)  # to 0.001 %, the canonical rollout's resolution
    if share == 100_000:
        return {"variant": key}
    if share == 0:
        return {"variant": default}
    return {
        "rollout": {
            "variations": [
                {"variant": key, "weight": share / 1000},
                {"variant": default, "weight": (100_000 - share) / 1000},
            ],
            "bucket_by": list(SPEC_BUCKET_BY),
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
