"""The order environments are shown and written in: the release pipeline, then the rest.

A flag moves development -> staging -> production, so that is the order people read a flag's
environments in (the console, exported files), not the alphabet (development, production,
staging).  Environments outside the pipeline follow alphabetically.  The same order every
time also keeps exported files' diffs quiet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

DEFAULT_PIPELINE: tuple[str, ...] = ("development", "staging", "production")

V = TypeVar("V")


def pipeline_order(keys: Iterable[str], pipeline: Sequence[str] = DEFAULT_PIPELINE) -> list[str]:
    """``keys`` in pipeline order: those named in ``pipeline`` first, in its order, then the
    others alphabetically."""
    position = {name: i for i, name in enumerate(pipeline)}
    return sorted(set(keys), key=lambda k: (position.get(k, len(position)), k))


def in_pipeline_order(
    mapping: Mapping[str, V], pipeline: Sequence[str] = DEFAULT_PIPELINE
) -> dict[str, V]:
    """A copy of ``mapping`` with its keys in pipeline order."""
    return {key: mapping[key] for key in pipeline_order(mapping, pipeline)}


def environments_in_pipeline_order(
    flag: Mapping[str, Any], pipeline: Sequence[str] = DEFAULT_PIPELINE
) -> dict[str, Any]:
    """A copy of a flag definition whose ``environments`` are in pipeline order."""
    envs = flag.get("environments")
    if not isinstance(envs, Mapping):
        return dict(flag)
    return {**flag, "environments": in_pipeline_order(envs, pipeline)}
