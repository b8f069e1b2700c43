"""What an SDK instance or relay reports: the change-event id it has applied.

A report is ``{"instance", "kind", "version", "sdk", "host", "pid", "via", "left"}``:

- ``instance``: an id the reporter picks at random when it starts (8 to 64 of
  ``A-Z a-z 0-9 . _ : -``).  It is **not a secret** and proves nothing by itself; the server files
  every report under the SDK key that sent it, so one key holder can never overwrite another
  key's instances (docs/relay.md, "What the view proves").
- ``kind``: ``sdk`` or ``relay``.
- ``version``: the id of the last change event applied to the instance's flag data (null while
  it has none).
- ``sdk``, ``host``, ``pid``: what the instance is (shown to people on call; all optional).
- ``via``: the instance id of the relay that forwarded the report (set by relays).
- ``left``: the instance shut down cleanly; the server forgets it at once.

Sent as the body ``{"reports": [...]}`` of ``POST /fleet/reports`` (at most :data:`MAX_REPORTS`),
or piggy-backed on requests the instance makes anyway as the headers ``Flagstaff-Instance`` and
``Flagstaff-Version`` (plus ``Flagstaff-Instance-Kind: relay`` from relays).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from flagstaff.errors import Invalid
from flagstaff.numerals import ascii_int

INSTANCE_HEADER = "Flagstaff-Instance"
VERSION_HEADER = "Flagstaff-Version"
KIND_HEADER = "Flagstaff-Instance-Kind"
KINDS = ("sdk", "relay")
MAX_REPORTS = 10_000
# ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
_INSTANCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,63}\Z")
_MAX_VERSION = 2**63 - 1  # a BIGINT
_TEXT_LIMITS = {"sdk": 64, "host": 255}
_FIELDS = frozenset({"instance", "kind", "version", "sdk", "host", "pid", "via", "left"})


@dataclass(frozen=True, slots=True)
class Report:
    instance: str
    kind: str = "sdk"
    version: int | None = None
    sdk: str | None = None
    host: str | None = None
    pid: int | None = None
    via: str | None = None
    left: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"instance": self.instance, "kind": self.kind,
                               "version": self.version}
        for name in ("sdk", "host", "pid", "via"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.left:
            out["left"] = True
        return out

    def forwarded_by(self, relay: str) -> Report:
        """The report as a relay passes it on: the relay nearest to the instance is the one
        recorded, so a relay further up a chain keeps it."""
        return self if self.via is not None else replace(self, via=relay)


def valid_instance(value: object) -> bool:
    return isinstance(value, str) and _INSTANCE.match(value) is not None


def parse_reports(body: Any) -> list[Report]:
    """The reports of a ``POST /fleet/reports`` body; 400 naming the field otherwise."""
    if not isinstance(body, dict):
        raise Invalid("body: must be a JSON object", details={"field": "body"})
    reports = body.get("reports")
    if not isinstance(reports, list):
        raise Invalid("reports: must be a list", details={"field": "reports"})
    if len(reports) > MAX_REPORTS:
        raise Invalid(f"reports: at most {MAX_REPORTS} per request",
                      details={"field": "reports"})
    return [_report(item, f"reports[{i}]") for i, item in enumerate(reports)]


def _report(item: Any, path: str) -> Report:
    if not isinstance(item, dict):
        raise Invalid(f"{path}: must be an object", details={"field": path})
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise Invalid(f"{path}.{unknown[0]}: unknown field", details={"field": f"{path}.{unknown[0]}"})
    instance = item.get("instance")
    if not valid_instance(instance):
        raise Invalid(
            f"{path}.instance: must be 8 to 64 letters, digits or . _ : - (a random id)",
            details={"field": f"{path}.instance"},
        )
    assert isinstance(instance, str)
    kind = item.get("kind", "sdk")
    if kind not in KINDS:
        raise Invalid(f"{path}.kind: must be sdk or relay", details={"field": f"{path}.kind"})
    version = item.get("version")
    if version is not None and not _is_version(version):
        raise Invalid(f"{path}.version: must be a change-event id (a non-negative integer) or null",
                      details={"field": f"{path}.version"})
    texts: dict[str, str | None] = {}
    for name, limit in _TEXT_LIMITS.items():
        value = item.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            raise Invalid(f"{path}.{name}: must be a string of at most {limit} characters",
                          details={"field": f"{path}.{name}"})
        texts[name] = value
    pid = item.get("pid")
    if pid is not None and (not isinstance(pid, int) or isinstance(pid, bool)
                            or not 0 <= pid < 2**31):
        raise Invalid(f"{path}.pid: must be a process id", details={"field": f"{path}.pid"})
    via = item.get("via")
    if via is not None and not valid_instance(via):
        raise Invalid(f"{path}.via: must be a relay's instance id", details={"field": f"{path}.via"})
    left = item.get("left", False)
    if not isinstance(left, bool):
        raise Invalid(f"{path}.left: must be true or false", details={"field": f"{path}.left"})
    return Report(instance=instance, kind=kind, version=version, sdk=texts["sdk"],
                  host=texts["host"], pid=pid, via=via, left=left)


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_VERSION


def report_from_headers(headers: Mapping[str, str]) -> Report | None:
    """The report carried by a request's headers, None if it carries none or a malformed one
    (a telemetry header never fails the request it rides on)."""
    instance = headers.get(INSTANCE_HEADER.lower()) or headers.get(INSTANCE_HEADER)
    if not valid_instance(instance):
        return None
    assert instance is not None
    raw = (headers.get(VERSION_HEADER.lower()) or headers.get(VERSION_HEADER) or "").strip()
    version = ascii_int(raw, max_digits=19)
    if version is None:
        return None
    kind = (headers.get(KIND_HEADER.lower()) or headers.get(KIND_HEADER) or "sdk").strip()
    if kind not in KINDS:
        return None
    return Report(instance=instance, kind=kind, version=version)


def report_headers(instance: str, version: int | None, *, kind: str = "sdk") -> dict[str, str]:
    """The headers that carry a report (none while there is no version to report)."""
    if version is None:
        return {}
    headers = {INSTANCE_HEADER: instance, VERSION_HEADER: str(version)}
    if kind != "sdk":
        headers[KIND_HEADER] = kind
    return headers
