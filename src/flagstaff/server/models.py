"""Request bodies and documented response shapes.

The flag and segment models describe the full canonical shape (contract §1, §2) for OpenAPI and
reject wrong JSON types early, but they pass everything through (``extra="allow"``): the real
validation is the engine's ``validate_flag``/``validate_segment``, whose ``DefinitionError``
path becomes ``details.field``.  Strict mode keeps pydantic from coercing ``"true"`` to True
behind the engine's back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    def payload(self) -> dict[str, Any]:
        """The body as sent (unset fields left out, extras kept) for the engine to validate."""
        return self.model_dump(exclude_unset=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FlagEnvironmentIn(_Open):
    enabled: bool = False
    prerequisites: list[dict[str, Any]] = Field(default_factory=list)
    targets: list[dict[str, Any]] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list, description="Ordered rules; first match wins")
    fallthrough: dict[str, Any] | None = None


class FlagIn(_Open):
    """A flag definition (contract §1); server fields (state, version, timestamps) are ignored."""

    key: str = Field(max_length=128, examples=["new-checkout"])
    name: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=2000)
    type: Literal["boolean", "string", "number", "json"] = "boolean"
    kind: str = "release"
    variants: dict[str, Any] | None = None
    off_variant: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=50)
    owner: str = Field(default="", max_length=200)
    salt: str | None = None
    environments: dict[str, FlagEnvironmentIn] = Field(default_factory=dict)


class FlagReplaceIn(FlagIn):
    """``PUT`` body: the key may be left out; if given it must equal the path key."""

    key: str = Field(default="", max_length=128)


class ToggleIn(_Closed):
    enabled: bool


class SegmentIn(_Open):
    key: str = Field(max_length=128, examples=["beta-users"])
    name: str | None = Field(default=None, max_length=200)
    description: str = Field(default="", max_length=2000)
    included: list[str] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)


class SegmentReplaceIn(SegmentIn):
    key: str = Field(default="", max_length=128)


class EnvironmentIn(_Closed):
    key: str = Field(max_length=128, examples=["qa"])
    name: str | None = Field(default=None, max_length=200)


class TokenIn(_Closed):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["management", "sdk-server", "sdk-client"]
    role: Literal["admin", "editor", "viewer"] | None = Field(
        default=None, description="management tokens only"
    )
    environment: str | None = Field(default=None, description="SDK keys only: the bound environment")


class EvaluateIn(_Closed):
    flag: str = Field(max_length=128)
    context: dict[str, Any] = Field(default_factory=dict)
    environment: str | None = Field(default=None, description="required for management tokens")
    default: Any = Field(default=None, description="served with reason ERROR when evaluation fails")


class EvaluateAllIn(_Closed):
    context: dict[str, Any] = Field(default_factory=dict)
    environment: str | None = None


class OfrepIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    context: dict[str, Any] = Field(default_factory=dict)


class EvaluationOut(BaseModel):
    key: str
    value: Any
    variant: str | None
    reason: str
    rule_id: str | None
    rule_index: int | None
    prerequisite_key: str | None
    error_code: str | None
    error_message: str | None
    version: int | None
    in_experiment: bool = False


class EvaluationsOut(BaseModel):
    environment: str
    version: int
    flags: dict[str, EvaluationOut]


class PageOut(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


# -- issue 6: ingestion and experiments (contract §9) --------------------------------------------

MAX_BATCH_EVENTS = 10_000


class _Ingest(BaseModel):
    # Unknown top-level fields are ignored so that newer SDKs can add metadata; the events
    # themselves are validated by the store, which names ``events[i].field`` on a 400.
    # ``/exposures`` and ``/track`` parse their bodies by hand for speed (routes/ingest.py):
    # their models only document the body, so they must say what the store accepts.
    model_config = ConfigDict(extra="ignore", strict=True)

    batch_id: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
        description="retry-safe batch id (a UUID)",
    )


_TIMESTAMP = {"type": "string", "maxLength": 64,
              "description": "ISO-8601; without an offset it is UTC", "examples": ["2025-03-01T10:00:00.123Z"]}
# Event schemas for the OpenAPI document (extra members are allowed and ignored).
EXPOSURE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["flag_key", "variant", "user_key", "timestamp"],
    "properties": {
        "flag_key": {"type": "string", "minLength": 1, "maxLength": 128},
        "variant": {"type": "string", "minLength": 1, "maxLength": 64},
        "user_key": {"type": "string", "minLength": 1, "maxLength": 256},
        "timestamp": _TIMESTAMP,
        "reason": {"type": "string", "maxLength": 32, "default": ""},
        "flag_version": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                                   {"type": "null"}], "default": None},
        "in_experiment": {"type": "boolean", "default": False},
    },
}
METRIC_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["metric", "user_key", "timestamp"],
    "properties": {
        "metric": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
        "user_key": {"type": "string", "minLength": 1, "maxLength": 256},
        "value": {"anyOf": [{"type": "number"}, {"type": "null"}], "default": None,
                  "description": "null = a conversion; a finite number for numeric metrics"},
        "timestamp": _TIMESTAMP,
    },
}


class ExposuresIn(_Ingest):
    events: list[Any] = Field(
        max_length=MAX_BATCH_EVENTS,
        description='[{"flag_key", "variant", "user_key", "timestamp", "reason", "flag_version", '
        '"in_experiment"}]',
        json_schema_extra={"items": EXPOSURE_EVENT_SCHEMA},
    )


class TrackIn(_Ingest):
    events: list[Any] = Field(
        max_length=MAX_BATCH_EVENTS,
        description='[{"metric", "user_key", "value": number|null (null = conversion), "timestamp"}]',
        json_schema_extra={"items": METRIC_EVENT_SCHEMA},
    )


class EvaluationCountsIn(_Ingest):
    window_start: str = Field(max_length=64)
    window_end: str = Field(max_length=64)
    counts: list[Any] = Field(
        max_length=MAX_BATCH_EVENTS, description='[{"flag_key", "variant", "count"}]'
    )


class IngestOut(BaseModel):
    accepted: int
    duplicate: bool


class ExperimentIn(_Open):
    """The experiment block of one environment (contract §9); the engine validates it."""

    allocation: float | int = Field(default=100, description="percent of eligible traffic")
    variations: list[dict[str, Any]] = Field(
        examples=[[{"variant": "control", "weight": 50}, {"variant": "treatment", "weight": 50}]]
    )
    control: str = Field(max_length=64)
    primary_metric: str = Field(max_length=128)
    metric_kind: Literal["conversion", "numeric"] = "conversion"
    salt: str = Field(min_length=1, max_length=200)
