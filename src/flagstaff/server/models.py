"""Request bodies and documented response shapes.

The flag and segment models describe the full canonical shape (contract §1, §2) for OpenAPI and
reject wrong JSON types early, but they pass everything through (``extra="allow"``): the real
validation is the engine's ``validate_flag``/``validate_segment``, whose ``DefinitionError``
path becomes ``details.field``.  Strict mode keeps pydantic from coercing ``"true"`` to True
behind the engine's back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _absent_not_null(schema: dict[str, Any]) -> None:
    # The field may be left out, but ``null`` is refused by the engine: no ``default: null``.
    schema.pop("default", None)


def _iso_8601(value: Any) -> datetime:
    # pydantic alone also takes Unix seconds ("0.5", "1700000000") for a datetime; the documented
    # format is ISO-8601 ("2025-03-01", "2025-03-01T10:00:00Z"), so nothing else is.
    text = value.strip() if isinstance(value, str) else ""
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError("must be an ISO-8601 date or date-time such as 2025-03-01T10:00:00Z") from None


# A query parameter in ISO-8601 only.
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]

def absent_allowed(**constraints: Any) -> Any:
    """A field that may be left out but is never ``null``: pydantic does not check defaults, so
    an absent field stays out of the payload while a ``null`` sent is refused, naming it."""
    return Field(default=None, json_schema_extra=_absent_not_null, **constraints)


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


def _type_required(schema: dict[str, Any]) -> None:
    schema["required"] = [*schema.get("required", []), "type"]


class FlagIn(_Open):
    """A flag definition (contract §1), or the spec's shape (contract §1a: ``defaultValue`` or
    ``default_value``, ``enabled``, ``rules[].value``, ``fallthrough``, a ``variants`` list,
    ``killSwitch``); server fields (state, version, timestamps, ``default_value`` on a
    canonical body) are ignored."""

    model_config = ConfigDict(json_schema_extra=_type_required)

    key: str = Field(max_length=128, examples=["new-checkout"])
    name: str = absent_allowed(max_length=200)
    description: str = Field(default="", max_length=2000)
    # Required, but by the engine, not here: a body without one is 400 naming ``type`` after the
    # checks of the other fields' JSON types, as before.  The document says it is required.
    type: Literal["boolean", "string", "number", "json"] = absent_allowed()
    kind: str = "release"
    variants: dict[str, Any] | list[Any] | None = Field(
        default=None, description="variant key -> value (canonical), or the spec's list of "
        "{key, name, value, weight}",
    )
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


class KillIn(_Closed):
    reason: str | None = Field(
        default=None, max_length=500, description="why, kept in the audit record",
        examples=["checkout errors spiking after deploy 4812"],
    )


class SegmentIn(_Open):
    key: str = Field(max_length=128, examples=["beta-users"])
    name: str = absent_allowed(max_length=200)
    description: str = Field(default="", max_length=2000)
    included: list[str] = Field(default_factory=list)
    excluded: list[str] = Field(default_factory=list)
    rules: list[dict[str, Any]] = Field(default_factory=list)


class SegmentReplaceIn(SegmentIn):
    key: str = Field(default="", max_length=128)


class EnvironmentIn(_Closed):
    key: str = Field(max_length=128, examples=["qa"])
    name: str | None = Field(default=None, max_length=200)


class ClientAccessIn(_Closed):
    """What browsers may do in an environment; a field left out keeps its setting."""

    allowed_origins: list[str] | None = Field(
        default=None, max_length=100,
        description="origins pages may call from, e.g. https://app.example.com",
        examples=[["https://app.example.com", "http://localhost:5173"]],
    )
    secure_mode: bool | None = Field(
        default=None, description="client-side keys must send a signed context key",
    )


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


# -- ingestion and experiments (contract §9) --------------------------------------------

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


class CodeReferenceIn(_Closed):
    key: str = Field(min_length=1, max_length=128, examples=["new-checkout"])
    file: str = Field(min_length=1, max_length=1000, examples=["src/checkout/views.py"])
    line: int = Field(ge=1, examples=[42])
    kind: Literal["sdk-call", "literal"] = Field(
        default="literal", description="an SDK call naming the key, or any string equal to it"
    )


class CodeReportIn(_Closed):
    repository: str = Field(min_length=1, max_length=200, examples=["github.com/acme/shop"])
    revision: str | None = Field(
        default=None, max_length=100, description="what was scanned, e.g. a commit", examples=["4f30ee8"]
    )
    references: list[CodeReferenceIn] = Field(max_length=20_000)


class CodeReportOut(BaseModel):
    repository: str
    scanned_at: str
    actor: str
    revision: str | None
    reference_count: int
    flag_count: int


class CodeReferenceOut(BaseModel):
    file: str
    line: int
    kind: str


class FlagRepositoryReferencesOut(BaseModel):
    repository: str
    scanned_at: str
    revision: str | None
    count: int = Field(description="every reference in this repository; at most 50 are listed")
    references: list[CodeReferenceOut]


class FlagCodeReferencesOut(BaseModel):
    key: str
    total: int
    repositories: list[FlagRepositoryReferencesOut]


class CodeRepositoriesOut(BaseModel):
    items: list[CodeReportOut]
