"""Fluent builders for canonical flag and segment definitions (docs/contract.md §1-§3).

Every layer's tests build their fixtures here so that a change to the canonical shape is made
in one place.  Builders produce plain dicts in canonical form; they do not validate (so tests
can also build deliberately broken definitions) - call ``engine.validate_flag`` for that, or
use :meth:`FlagBuilder.resolved` / :func:`snapshot` which validate.

Example::

    flag("new-checkout").boolean().env(
        "production",
        lambda e: e.on()
        .target("true", "u1")
        .rule("beta", cond("tenant.id", "in", "a", "b"), serve="true")
        .fallthrough_rollout(true=10, false=90),
    ).build()
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "EnvBuilder",
    "FlagBuilder",
    "SegmentBuilder",
    "cond",
    "flag",
    "rollout",
    "segment",
    "segment_match",
    "snapshot",
]

Json = Any


def cond(attribute: str | None, operator: str, *values: Json, negate: bool = False) -> dict[str, Json]:
    """A condition; ``cond("country", "in", "DE", "FR")``. Several values are ORed."""
    out: dict[str, Json] = {"operator": operator, "values": list(values), "negate": negate}
    if attribute is not None:
        out = {"attribute": attribute, **out}
    return out


def segment_match(*segment_keys: str, negate: bool = False) -> dict[str, Json]:
    """A ``segment_match`` condition naming one or more segments (ORed)."""
    return cond(None, "segment_match", *segment_keys, negate=negate)


def rollout(
    weights: Mapping[str, float] | None = None,
    *,
    bucket_by: str | None = None,
    salt: str | None = None,
    **kw_weights: float,
) -> dict[str, Json]:
    """A ``{"rollout": ...}`` serve; weights in declared order, as a mapping or keywords.

    ``rollout(true=10, false=90)`` or ``rollout({"blue-ish": 50, "red": 50}, bucket_by="tenant.id")``.
    """
    merged = {**(weights or {}), **kw_weights}
    body: dict[str, Json] = {
        "variations": [{"variant": k, "weight": w} for k, w in merged.items()]
    }
    if bucket_by is not None:
        body["bucket_by"] = bucket_by
    if salt is not None:
        body["salt"] = salt
    return {"rollout": body}


def _serve(serve: str | Mapping[str, Json]) -> dict[str, Json]:
    if isinstance(serve, str):
        return {"variant": serve}
    return dict(serve)


class EnvBuilder:
    """One environment's configuration of a flag."""

    def __init__(self) -> None:
        self._data: dict[str, Json] = {
            "enabled": False,
            "prerequisites": [],
            "targets": [],
            "rules": [],
            "fallthrough": None,
        }

    def on(self) -> EnvBuilder:
        self._data["enabled"] = True
        return self

    def off(self) -> EnvBuilder:
        self._data["enabled"] = False
        return self

    def prerequisite(self, flag_key: str, variant: str) -> EnvBuilder:
        self._data["prerequisites"].append({"flag": flag_key, "variant": variant})
        return self

    def prerequisite_any(self, flag_key: str, *variants: str) -> EnvBuilder:
        """The parent must be on and serve any of ``variants``."""
        self._data["prerequisites"].append({"flag": flag_key, "variants": list(variants)})
        return self

    def prerequisite_off(self, flag_key: str) -> EnvBuilder:
        """The parent must be off in this environment."""
        self._data["prerequisites"].append({"flag": flag_key, "off": True})
        return self

    def prerequisites(self, *raw: Mapping[str, Json]) -> EnvBuilder:
        """Prerequisites exactly as given (for validation tests)."""
        self._data["prerequisites"].extend(dict(p) for p in raw)
        return self

    def target(self, variant: str, *values: str) -> EnvBuilder:
        """Serve ``variant`` to these targeting keys (adds to an existing list for the variant)."""
        for existing in self._data["targets"]:
            if existing["variant"] == variant:
                existing["values"].extend(values)
                return self
        self._data["targets"].append({"variant": variant, "values": list(values)})
        return self

    def rule(
        self,
        rule_id: str | None,
        *conditions: Mapping[str, Json],
        serve: str | Mapping[str, Json],
        description: str | None = None,
    ) -> EnvBuilder:
        """An ordered rule; ``serve`` is a variant key or a :func:`rollout`. ``None`` id = generated."""
        body: dict[str, Json] = {}
        if rule_id is not None:
            body["id"] = rule_id
        if description is not None:
            body["description"] = description
        body["conditions"] = [dict(c) for c in conditions]
        body["serve"] = _serve(serve)
        self._data["rules"].append(body)
        return self

    def fallthrough(self, serve: str | Mapping[str, Json] | None) -> EnvBuilder:
        self._data["fallthrough"] = None if serve is None else _serve(serve)
        return self

    def fallthrough_rollout(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        bucket_by: str | None = None,
        salt: str | None = None,
        **kw_weights: float,
    ) -> EnvBuilder:
        self._data["fallthrough"] = rollout(weights, bucket_by=bucket_by, salt=salt, **kw_weights)
        return self

    def experiment(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        status: str = "draft",
        allocation: float = 100,
        control: str | None = None,
        primary_metric: str = "checkout",
        metric_kind: str = "conversion",
        salt: str = "exp-salt",
    ) -> EnvBuilder:
        """An experiment block (contract §9); ``weights`` default to 50/50 true/false."""
        weights = dict(weights or {"false": 50, "true": 50})
        self._data["experiment"] = {
            "status": status,
            "allocation": allocation,
            "variations": [{"variant": v, "weight": w} for v, w in weights.items()],
            "control": control or next(iter(weights)),
            "primary_metric": primary_metric,
            "metric_kind": metric_kind,
            "salt": salt,
        }
        return self

    def build(self) -> dict[str, Json]:
        return copy.deepcopy(self._data)


class FlagBuilder:
    """A canonical flag definition; start with :func:`flag`."""

    def __init__(self, key: str) -> None:
        self._data: dict[str, Json] = {
            "key": key,
            "name": key,
            "description": "",
            "type": "boolean",
            "kind": "release",
            "variants": {"true": True, "false": False},
            "off_variant": "false",
            "tags": [],
            "owner": "",
            "salt": None,
            "environments": {},
        }

    def _typed(self, type_: str, variants: Mapping[str, Json], off: str | None) -> FlagBuilder:
        self._data["type"] = type_
        self._data["variants"] = dict(variants)
        self._data["off_variant"] = off if off is not None else next(iter(variants), None)
        return self

    def boolean(self) -> FlagBuilder:
        return self._typed("boolean", {"true": True, "false": False}, "false")

    def string(self, variants: Mapping[str, str] | None = None, *, off: str | None = None,
               **kw: str) -> FlagBuilder:
        """String variants; ``off`` defaults to the first variant."""
        return self._typed("string", {**(variants or {}), **kw}, off)

    def number(self, variants: Mapping[str, float] | None = None, *, off: str | None = None,
               **kw: float) -> FlagBuilder:
        return self._typed("number", {**(variants or {}), **kw}, off)

    def json(self, variants: Mapping[str, Json] | None = None, *, off: str | None = None,
             **kw: Json) -> FlagBuilder:
        return self._typed("json", {**(variants or {}), **kw}, off)

    def off_variant(self, variant: str) -> FlagBuilder:
        self._data["off_variant"] = variant
        return self

    def name(self, name: str) -> FlagBuilder:
        self._data["name"] = name
        return self

    def description(self, text: str) -> FlagBuilder:
        self._data["description"] = text
        return self

    def kind(self, kind: str) -> FlagBuilder:
        self._data["kind"] = kind
        return self

    def tags(self, *tags: str) -> FlagBuilder:
        self._data["tags"] = list(tags)
        return self

    def owner(self, owner: str) -> FlagBuilder:
        self._data["owner"] = owner
        return self

    def salt(self, salt: str | None) -> FlagBuilder:
        self._data["salt"] = salt
        return self

    def client_side(self, available: bool = True) -> FlagBuilder:
        """Available to client-side SDK keys (browsers)."""
        self._data["client_side"] = available
        return self

    def set(self, field: str, value: Json) -> FlagBuilder:
        """Escape hatch: set any top-level field (e.g. to build an invalid definition)."""
        self._data[field] = value
        return self

    def env(self, name: str, configure: Callable[[EnvBuilder], EnvBuilder] | None = None) -> FlagBuilder:
        """Add (or replace) an environment; without ``configure`` it is enabled, serving nothing."""
        builder = EnvBuilder()
        if configure is None:
            builder.on()
        else:
            configure(builder)
        self._data["environments"][name] = builder.build()
        return self

    def on(self, *envs: str, serve: str | None = None) -> FlagBuilder:
        """Shortcut: enabled in ``envs`` (default production) with a fixed fallthrough variant."""
        fallthrough = serve if serve is not None else self._first_truthy_variant()
        for name in envs or ("production",):
            self.env(name, lambda e: e.on().fallthrough(fallthrough))
        return self

    def _first_truthy_variant(self) -> str:
        variants: dict[str, Json] = self._data["variants"]
        return "true" if "true" in variants else next(iter(variants))

    def build(self) -> dict[str, Json]:
        return copy.deepcopy(self._data)

    def resolved(self, environment: str = "production", *, version: int = 1) -> dict[str, Json]:
        """The validated, environment-resolved form used in snapshots (contract §3)."""
        from flagstaff.engine import resolve_flag, validate_flag

        definition = validate_flag(self.build())
        definition.setdefault("version", version)
        return resolve_flag(definition, environment)


class SegmentBuilder:
    """A canonical segment definition; start with :func:`segment`."""

    def __init__(self, key: str) -> None:
        self._data: dict[str, Json] = {
            "key": key,
            "name": key,
            "description": "",
            "included": [],
            "excluded": [],
            "rules": [],
        }

    def include(self, *keys: str) -> SegmentBuilder:
        self._data["included"].extend(keys)
        return self

    def exclude(self, *keys: str) -> SegmentBuilder:
        self._data["excluded"].extend(keys)
        return self

    def rule(self, *conditions: Mapping[str, Json], rule_id: str | None = None) -> SegmentBuilder:
        """A rule whose conditions are ANDed; a context matching any rule is in the segment."""
        body: dict[str, Json] = {}
        if rule_id is not None:
            body["id"] = rule_id
        body["conditions"] = [dict(c) for c in conditions]
        self._data["rules"].append(body)
        return self

    def name(self, name: str) -> SegmentBuilder:
        self._data["name"] = name
        return self

    def description(self, text: str) -> SegmentBuilder:
        self._data["description"] = text
        return self

    def build(self) -> dict[str, Json]:
        return copy.deepcopy(self._data)


def flag(key: str) -> FlagBuilder:
    return FlagBuilder(key)


def segment(key: str) -> SegmentBuilder:
    return SegmentBuilder(key)


def snapshot(
    flags: Iterable[FlagBuilder | Mapping[str, Json]] = (),
    segments: Iterable[SegmentBuilder | Mapping[str, Json]] = (),
    *,
    environment: str = "production",
    version: int = 1,
) -> dict[str, Json]:
    """A snapshot dict (contract §3) from flag/segment builders or canonical definitions."""
    from flagstaff.engine import resolve_flag, validate_flag, validate_segment

    resolved: dict[str, Json] = {}
    for f in flags:
        definition = validate_flag(f.build() if isinstance(f, FlagBuilder) else f)
        definition.setdefault("version", 1)
        resolved[definition["key"]] = resolve_flag(definition, environment)
    segs: dict[str, Json] = {}
    for s in segments:
        seg = validate_segment(s.build() if isinstance(s, SegmentBuilder) else s)
        segs[seg["key"]] = seg
    return {"environment": environment, "version": version, "flags": resolved, "segments": segs}
