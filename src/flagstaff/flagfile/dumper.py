"""Writing canonical flag files that :func:`flagstaff.flagfile.loads` reads back unchanged.

Keys are written in a fixed, readable order (key and name first, environments last) so that
exports diff cleanly in version control; server-managed fields are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from flagstaff.flagfile.governance import dump_policy, dump_webhook
from flagstaff.flagfile.loader import SERVER_MANAGED

HEADER = "# Flagstaff flag file (canonical format). Apply with: flagstaff apply -f <file>\n"

FLAG_ORDER = (
    "key", "name", "description", "type", "kind", "variants", "off_variant",
    "tags", "owner", "salt", "client_side", "environments",
)  # fmt: skip
ENVIRONMENT_ORDER = ("enabled", "prerequisites", "targets", "rules", "fallthrough")
RULE_ORDER = ("id", "description", "conditions", "serve")
CONDITION_ORDER = ("attribute", "operator", "values", "negate", "ignore_case", "lenient", "timezone")
SEGMENT_ORDER = ("key", "name", "description", "included", "excluded", "rules")
ROLLOUT_ORDER = ("variations", "bucket_by", "salt")


_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        # Anchors and aliases are legal but unreadable in a reviewed file.
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # PyYAML writes Unicode line breaks raw in plain and single-quoted scalars and reads them
    # back as spaces; double quotes escape them, so the round trip stays exact.
    style = '"' if any(ch in data for ch in _LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def dumps(
    flags: Iterable[Mapping[str, Any]],
    segments: Iterable[Mapping[str, Any]] = (),
    environments: Iterable[str] = (),
    *,
    policies: Mapping[str, Mapping[str, Any]] | None = None,
    webhooks: Iterable[Mapping[str, Any]] = (),
) -> str:
    """Canonical YAML for the given definitions (in the order given); ``policies`` and
    ``webhooks`` are written only when there are some."""
    document: dict[str, Any] = {"environments": list(environments)}
    if policies:
        document["policies"] = {env: dump_policy(p) for env, p in policies.items()}
    document["segments"] = [_ordered(_strip(s), SEGMENT_ORDER, _segment_child) for s in segments]
    document["flags"] = [_ordered(_strip(f), FLAG_ORDER, _flag_child) for f in flags]
    hooks = [dump_webhook(w) for w in webhooks]
    if hooks:
        document["webhooks"] = hooks
    body = yaml.dump(
        document,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return HEADER + body


def _ordered(data: Mapping[str, Any], order: tuple[str, ...], child: Any = None) -> dict[str, Any]:
    keys = [k for k in order if k in data] + sorted(k for k in data if k not in order)
    out: dict[str, Any] = {}
    for key in keys:
        out[key] = child(key, data[key]) if child else data[key]
    return out


def _strip(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in definition.items() if k not in SERVER_MANAGED}


def _flag_child(key: str, value: Any) -> Any:
    if key == "environments" and isinstance(value, Mapping):
        return {env: _environment(config) for env, config in value.items()}
    return value


def _environment(config: Any) -> Any:
    if not isinstance(config, Mapping):
        return config

    def child(key: str, value: Any) -> Any:
        if key == "rules" and isinstance(value, list):
            return [_rule(rule) for rule in value]
        if key == "fallthrough":
            return _serve(value)
        return value

    return _ordered(config, ENVIRONMENT_ORDER, child)


def _segment_child(key: str, value: Any) -> Any:
    if key == "rules" and isinstance(value, list):
        return [_rule(rule) for rule in value]
    return value


def _rule(rule: Any) -> Any:
    if not isinstance(rule, Mapping):
        return rule

    def child(key: str, value: Any) -> Any:
        if key == "conditions" and isinstance(value, list):
            return [_ordered(c, CONDITION_ORDER) if isinstance(c, Mapping) else c for c in value]
        if key == "serve":
            return _serve(value)
        return value

    return _ordered(rule, RULE_ORDER, child)


def _serve(serve: Any) -> Any:
    if isinstance(serve, Mapping) and isinstance(serve.get("rollout"), Mapping):
        return {**serve, "rollout": _ordered(serve["rollout"], ROLLOUT_ORDER)}
    return serve
