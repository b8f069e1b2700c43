"""Parsing what people type for governed change: times (``+2h``, ISO-8601), rollout weights
(``true=25,false=75``) and JSON or YAML patches (inline or ``@file``)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from flagstaff.cli.errors import CliError

_RELATIVE = re.compile(r"^\+([0-9]+(?:\.[0-9]+)?)([smhd])\Z")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_time(text: str, *, now: datetime | None = None, option: str = "--at") -> str:
    """``+90s``/``+10m``/``+2h``/``+1d`` from now, or an ISO-8601 time with a timezone; returns
    ISO-8601 UTC for the API."""
    moment = now or datetime.now(UTC)
    relative = _RELATIVE.match(text.strip())
    at: datetime | None
    if relative:
        amount, unit = float(relative.group(1)), relative.group(2)
        at = moment + timedelta(**{_UNITS[unit]: amount})
    else:
        try:
            at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            raise CliError(
                f"{option} must be +<n>s/m/h/d (e.g. +2h) or an ISO-8601 time with a timezone "
                f"(e.g. 2030-01-01T09:00:00Z), not {text!r}"
            )
    assert at is not None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_duration(text: str, *, option: str = "--every") -> timedelta:
    match = _RELATIVE.match("+" + text.strip().lstrip("+"))
    if not match:
        raise CliError(f"{option} must look like 30m, 2h or 1d, not {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def parse_weights(text: str, *, option: str = "--rollout") -> list[dict[str, Any]]:
    """``true=25,false=75`` -> rollout variations."""
    variations = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        variant, sep, weight = part.partition("=")
        try:
            value = float(weight)
        except ValueError:
            value = None
        if not sep or not variant or value is None:
            raise CliError(f"{option} takes variant=weight pairs, e.g. true=25,false=75 (got {part!r})")
        variations.append({"variant": variant.strip(), "weight": int(value) if value.is_integer() else value})
    if not variations:
        raise CliError(f"{option} takes variant=weight pairs, e.g. true=25,false=75")
    return variations


def parse_document(text: str, *, option: str) -> dict[str, Any]:
    """A JSON or YAML object given inline or as ``@path``."""
    source = text
    if text.startswith("@"):
        try:
            source = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{option}: cannot read {text[1:]}: {exc.strerror or exc}") from None
    try:
        value = json.loads(source)
    except ValueError:
        try:
            value = yaml.safe_load(source)
        except yaml.YAMLError as exc:
            raise CliError(f"{option} is neither JSON nor YAML: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"{option} must be a JSON or YAML object")
    return value
